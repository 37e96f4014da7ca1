"""The runner's side of the history (issue 11): what each committed transaction wrote, logged
exactly by a trigger; where each result column came from; which row versions satisfy each
simple read's WHERE clause; and that recording all this changes nothing a scenario does."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import process_unique
from scenario_text import scenario_from_yaml

from txnlab.errors import ServerError
from txnlab.history.capture import PREFIX, parse_row
from txnlab.history.model import HistoryCapture, LoggedWrite
from txnlab.history.predicates import predicate_read, rows_json
from txnlab.levels import Level
from txnlab.runner.lab import Lab, open_lab
from txnlab.scenario import Catalogue, Scenario
from txnlab.timeline import Event, Timeline


def _scenario(setup: str, steps: str, sessions: str = "a: {}\n  b: {}") -> Scenario:
    text = f"""
name: capture
title: capture
summary: what the history records
setup: |
  {setup}
sessions:
  {sessions}
steps:
{steps}
expect:
  all: {{}}
"""
    return scenario_from_yaml(text)


def _history(lab: Lab, scenario: Scenario, level: Level = Level.READ_COMMITTED) -> HistoryCapture:
    timeline = lab.run(scenario, level)
    assert timeline.history is not None
    return timeline.history


def _changes(history: HistoryCapture) -> list[tuple[str, str, Any, Any]]:
    return [(w.table, w.operation, w.before, w.after) for w in history.writes]


ACCOUNTS = "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance int);\n  " \
           "INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 50), (3, 'carol', 0);"


def test_a_multi_row_update_logs_every_row_it_changed_before_and_after_as_one_statement(lab: Lab) -> None:
    history = _history(lab, _scenario(ACCOUNTS, """
  - {name: a_pay, session: a, sql: "UPDATE accounts SET balance = balance + 1 WHERE id <= 2"}
  - {name: a_commit, session: a, sql: COMMIT}
"""))
    assert _changes(history) == [
        ("accounts", "UPDATE", ("1", "alice", "100"), ("1", "alice", "101")),
        ("accounts", "UPDATE", ("2", "bob", "50"), ("2", "bob", "51")),
    ]
    assert len({w.statement for w in history.writes}) == 1
    assert len({w.xid for w in history.writes}) == 1
    assert history.writes[0].query == "UPDATE accounts SET balance = balance + 1 WHERE id <= 2"


def test_insert_delete_and_a_key_change_are_logged_with_the_rows_they_had(lab: Lab) -> None:
    history = _history(lab, _scenario(ACCOUNTS, """
  - {name: a_insert, session: a, sql: "INSERT INTO accounts VALUES (4, 'dave', 7)"}
  - {name: a_delete, session: a, sql: "DELETE FROM accounts WHERE id = 3"}
  - {name: a_rekey, session: a, sql: "UPDATE accounts SET id = 20 WHERE id = 2"}
  - {name: a_commit, session: a, sql: COMMIT}
"""))
    assert _changes(history) == [
        ("accounts", "INSERT", None, ("4", "dave", "7")),
        ("accounts", "DELETE", ("3", "carol", "0"), None),
        ("accounts", "UPDATE", ("2", "bob", "50"), ("20", "bob", "50")),
    ]
    statements = [w.statement for w in history.writes]
    assert statements == sorted(set(statements))  # one statement each, in order


def test_writes_a_savepoint_rolled_back_or_an_aborted_transaction_made_are_not_in_the_history(lab: Lab) -> None:
    history = _history(lab, _scenario(ACCOUNTS, """
  - {name: a_first, session: a, sql: "UPDATE accounts SET balance = 1 WHERE id = 1"}
  - {name: a_savepoint, session: a, sql: SAVEPOINT s}
  - {name: a_undone, session: a, sql: "UPDATE accounts SET balance = 2 WHERE id = 2"}
  - {name: a_back, session: a, sql: ROLLBACK TO SAVEPOINT s}
  - {name: b_write, session: b, sql: "UPDATE accounts SET balance = 3 WHERE id = 3"}
  - {name: b_rollback, session: b, sql: ROLLBACK}
  - {name: a_commit, session: a, sql: COMMIT}
"""))
    assert _changes(history) == [("accounts", "UPDATE", ("1", "alice", "100"), ("1", "alice", "1"))]


def test_the_writes_of_each_session_carry_its_backend_pid_and_its_own_transaction_id(lab: Lab) -> None:
    history = _history(lab, _scenario(ACCOUNTS, """
  - {name: a_write, session: a, sql: "UPDATE accounts SET balance = 1 WHERE id = 1"}
  - {name: b_write, session: b, sql: "UPDATE accounts SET balance = 2 WHERE id = 2"}
  - {name: a_commit, session: a, sql: COMMIT}
  - {name: b_commit, session: b, sql: COMMIT}
"""))
    pids = dict(history.session_pids)
    assert [w.pid for w in history.writes] == [pids["a"], pids["b"]]
    assert history.writes[0].xid != history.writes[1].xid


def test_the_setup_state_is_read_as_tables_columns_keys_and_rows_as_the_server_prints_them(lab: Lab) -> None:
    setup = ("CREATE TABLE pairs (gone int, b text, a int, note text, PRIMARY KEY (a, b));\n  "
             "ALTER TABLE pairs DROP COLUMN gone;\n  "
             "INSERT INTO pairs VALUES ('x,y', 1, NULL), ('', 2, 'say \"hi\" (\\o/)');")
    history = _history(lab, _scenario(setup, "  - {name: a_read, session: a, sql: SELECT 1}"))
    table = history.table("pairs")
    assert table is not None
    assert (table.columns, table.attnums, table.key_columns) == (("b", "a", "note"), (2, 3, 4), ("a", "b"))
    assert sorted(history.initial) == [("pairs", ("", "2", 'say "hi" (\\o/)')), ("pairs", ("x,y", "1", None))]
    assert table.key_of(("x,y", "1", None)) == ("1", "x,y")


def test_the_setup_rows_are_whole_rows_even_when_a_column_has_the_name_of_the_table_s_alias(lab: Lab) -> None:
    history = _history(lab, _scenario("CREATE TABLE fruit (t text PRIMARY KEY, x int);\n  INSERT INTO fruit VALUES ('apple', 1);",
                                      "  - {name: a_read, session: a, sql: SELECT 1}"))
    assert history.initial == (("fruit", ("apple", "1")),)


TRICKY = st.one_of(st.none(), st.text(alphabet=st.sampled_from(list('a ,()"\\\'\t\n{}é')), max_size=8))


@pytest.fixture(scope="module")
def two(scratch_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection with a temporary table of two text columns, for rows to round-trip through."""
    conn = psycopg2.connect(scratch_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE two (f1 text, f2 text)")
    yield conn
    conn.close()


@settings(max_examples=80, deadline=None)
@given(st.tuples(TRICKY, TRICKY))
def test_a_row_s_text_form_parses_back_into_exactly_the_values_the_server_holds(two, values) -> None:  # type: ignore[no-untyped-def]
    with two.cursor() as cur:
        cur.execute("SELECT ROW(%s::text, %s::text)::two::text", list(values))
        printed = cur.fetchone()[0]
        assert parse_row(printed, 2) == values
        cur.execute("SELECT f1, f2 FROM jsonb_populate_recordset(NULL::two, %s::jsonb)",  # back, as predicates send it
                    [rows_json(("f1", "f2"), [values])])
        assert cur.fetchone() == values


def test_a_malformed_row_text_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_row("1,2", 2)
    with pytest.raises(ValueError):
        parse_row("(1,2,3)", 2)
    assert parse_row("()", 0) == ()
    assert parse_row('(,"")', 2) == (None, "")


def test_a_session_under_set_role_to_a_role_with_no_rights_on_the_log_still_logs_its_writes(
    server_dsn: str, admin,  # type: ignore[no-untyped-def]
) -> None:
    role = process_unique("txnlab_capture_nobody")  # roles are server-wide
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} NOLOGIN; GRANT {role} TO CURRENT_USER")
    except psycopg2.Error as exc:
        pytest.skip(f"the test role may not create and grant a role: {exc.diag.message_primary}")
    try:
        scenario = _scenario(
            ACCOUNTS + "\n  DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO " + role + "', current_schema()); END $$;"
            + f"\n  GRANT SELECT, UPDATE ON accounts TO {role};", f"""
  - {{name: a_role, session: a, sql: "SET ROLE {role}"}}
  - {{name: a_write, session: a, sql: "UPDATE accounts SET balance = 0 WHERE id = 1"}}
  - {{name: a_who, session: a, sql: "SELECT current_user"}}
  - {{name: a_commit, session: a, sql: COMMIT}}
""")
        with open_lab(server_dsn) as lab:
            timeline = lab.run(scenario, Level.SERIALIZABLE)
        assert timeline.final_event("a_write").error is None  # type: ignore[union-attr]
        assert timeline.final_event("a_who").rows == ((role,),)  # type: ignore[union-attr]
        assert timeline.history is not None
        assert _changes(timeline.history) == [("accounts", "UPDATE", ("1", "alice", "100"), ("1", "alice", "0"))]
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP ROLE {role}")


def test_each_result_column_says_which_table_column_it_came_from_and_expressions_none(lab: Lab) -> None:
    timeline = lab.run(_scenario(ACCOUNTS, """
  - {name: a_read, session: a, sql: "SELECT balance, id, balance + 1 AS more, 'x' AS lit FROM accounts WHERE id = 1"}
"""), Level.READ_COMMITTED)
    assert timeline.history is not None
    accounts = timeline.history.table("accounts")
    assert accounts is not None
    event = timeline.final_event("a_read")
    assert event is not None
    assert event.column_origins == ((accounts.oid, 3), (accounts.oid, 1), (0, 0), (0, 0))


# -- reads by condition ------------------------------------------------------------------------

@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT * FROM accounts WHERE balance > 10", ("accounts", "accounts", "balance > 10")),
    ("SELECT a.id FROM ONLY accounts AS a WHERE a.owner LIKE 'a%' FOR UPDATE", ("accounts", "a", "a.owner LIKE 'a%'")),
    ("SELECT count(*) FROM accounts", ("accounts", "accounts", "TRUE")),
    ("select id from accounts where lower(owner) = 'bob'", ("accounts", "accounts", "lower(owner) = 'bob'")),
])
def test_a_plain_select_from_one_run_table_is_a_read_by_condition_with_its_where_clause(
    sql: str, expected: tuple[str, str, str],
) -> None:
    candidate = predicate_read(sql, frozenset({"accounts", "ledger"}))
    assert candidate is not None
    assert (candidate.table, candidate.alias, candidate.predicate) == expected


@pytest.mark.parametrize("sql", [
    "SELECT * FROM accounts JOIN ledger ON true WHERE balance > 0",
    "SELECT * FROM accounts, ledger",
    "SELECT * FROM accounts WHERE id IN (SELECT 1)",
    "SELECT * FROM accounts WHERE balance > 0 LIMIT 1",
    "WITH x AS (SELECT 1) SELECT * FROM accounts",
    "SELECT * FROM accounts UNION SELECT * FROM accounts",
    "SELECT * FROM accounts WHERE owner = CURRENT_USER",
    "SELECT * FROM other WHERE true",
    "SELECT * FROM public.accounts",
    "SELECT 1; SELECT * FROM accounts",
    "UPDATE accounts SET balance = 0 FROM ledger",
    "DELETE FROM accounts USING ledger WHERE true",
    "DELETE FROM accounts WHERE CURRENT OF c",
    "SELECT * FROM (SELECT * FROM accounts) s",
    "not sql at all",
])
def test_other_statements_are_no_read_by_condition(sql: str) -> None:
    assert predicate_read(sql, frozenset({"accounts", "ledger"})) is None


def test_each_where_clause_is_evaluated_against_the_setup_rows_and_every_logged_version(lab: Lab) -> None:
    timeline = lab.run(_scenario(ACCOUNTS, """
  - {name: a_rich, session: a, sql: "SELECT id FROM accounts AS x WHERE x.balance >= 50"}
  - {name: b_pay, session: b, sql: "UPDATE accounts SET balance = 60 WHERE id = 3"}
  - {name: b_drain, session: b, sql: "UPDATE accounts SET balance = 0 WHERE id = 2"}
  - {name: b_commit, session: b, sql: COMMIT}
  - {name: a_all, session: a, sql: "SELECT * FROM accounts"}
"""), Level.REPEATABLE_READ)
    history = timeline.history
    assert history is not None
    tests = {t.event_seq: t for t in history.predicates}
    rich = tests[timeline.final_event("a_rich").seq]  # type: ignore[union-attr]
    pay, drain = (w.seq for w in history.writes)
    assert (rich.table, rich.predicate) == ("accounts", "x.balance >= 50")
    assert rich.initial == {("1",), ("2",)}
    assert rich.writes == ((pay, False, True), (drain, True, False))
    everything = tests[timeline.final_event("a_all").seq]  # type: ignore[union-attr]
    assert everything.initial == {("1",), ("2",), ("3",)}
    assert everything.writes == ((pay, True, True), (drain, True, True))


def test_a_where_clause_that_is_not_immutable_or_fails_after_the_run_is_a_gap_not_an_error(lab: Lab) -> None:
    timeline = lab.run(_scenario(ACCOUNTS, """
  - {name: a_fn, session: a, sql: "CREATE FUNCTION pg_temp.big(int) RETURNS bool IMMUTABLE LANGUAGE sql AS 'SELECT $1 > 10'"}
  - {name: a_temp, session: a, sql: "SELECT id FROM accounts WHERE pg_temp.big(balance)"}
  - {name: a_clock, session: a, sql: "SELECT id FROM accounts WHERE now() > '2000-01-01'"}
  - {name: a_plain, session: a, sql: "SELECT id FROM accounts WHERE balance > 10"}
"""), Level.READ_COMMITTED)
    history = timeline.history
    assert history is not None
    assert [t.predicate for t in history.predicates] == ["balance > 10"]
    assert any(g.startswith("step a_clock's WHERE clause calls a function that is not immutable") for g in history.gaps)
    assert any(g.startswith("step a_temp's WHERE clause could not be re-evaluated: ") for g in history.gaps)


# -- gaps ----------------------------------------------------------------------------------------

def test_what_the_history_cannot_see_is_said_as_gaps(lab: Lab) -> None:
    setup = ("CREATE TABLE ledger (amount int);\n  CREATE TABLE t (id int PRIMARY KEY, v int);\n  "
             "CREATE TABLE u (id int PRIMARY KEY, v int);\n  INSERT INTO t VALUES (1, 1);")
    history = _history(lab, _scenario(setup, """
  - {name: a_log, session: a, sql: "INSERT INTO ledger VALUES (5)"}
  - {name: a_commit, session: a, sql: COMMIT}
  - {name: b_truncate, session: b, sql: TRUNCATE t}
  - {name: b_new, session: b, sql: "CREATE TABLE fresh (id int PRIMARY KEY)"}
  - {name: b_widen, session: b, sql: "ALTER TABLE u ADD COLUMN w int"}
  - {name: b_commit, session: b, sql: COMMIT}
"""))
    assert history.gaps == (
        "ledger has no primary key: its rows are not objects, so its writes give no edges",
        "fresh was created during the run: its writes are not recorded",
        "u's columns changed during the run: its writes after the change are not recorded",
        "t was truncated (or rewritten) during the run: the rows a TRUNCATE removed have no later versions",
    )
    assert _changes(history) == [("ledger", "INSERT", None, ("5",))]


def test_a_truncated_partition_is_a_gap_of_its_table_and_a_truncate_rolled_back_is_none(lab: Lab) -> None:
    setup = ("CREATE TABLE t (id int PRIMARY KEY, v int);\n  "
             "CREATE TABLE m (id int PRIMARY KEY, v int) PARTITION BY RANGE (id);\n  "
             "CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);\n  "
             "INSERT INTO t VALUES (1, 1);\n  INSERT INTO m VALUES (1, 1);")
    history = _history(lab, _scenario(setup, """
  - {name: a_truncate, session: a, sql: TRUNCATE t}
  - {name: a_rollback, session: a, sql: ROLLBACK}
  - {name: b_truncate, session: b, sql: TRUNCATE m1}
  - {name: b_commit, session: b, sql: COMMIT}
"""))
    assert history.gaps == (
        "m was truncated (or rewritten) during the run: the rows a TRUNCATE removed have no later versions",
    )
    assert _changes(history) == []


TRIGGERS_SQL = ("SELECT c.relname::text, t.tgtype FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE c.relnamespace = current_schema()::regnamespace ORDER BY 1")


def test_the_history_puts_one_row_trigger_and_no_statement_trigger_on_each_table(lab: Lab) -> None:
    """tgtype 29: ROW | INSERT | DELETE | UPDATE, AFTER (pg_trigger.h); no TRUNCATE trigger."""
    timeline = lab.run(_scenario("CREATE TABLE t (id int PRIMARY KEY);\n  CREATE TABLE u (id int PRIMARY KEY);", f"""
  - {{name: a_triggers, session: a, sql: "{TRIGGERS_SQL}"}}
"""), Level.READ_COMMITTED)
    assert timeline.final_event("a_triggers").rows == (("t", "29"), ("u", "29"))  # type: ignore[union-attr]


# -- changing nothing ----------------------------------------------------------------------------

# What differs between two runs of a scenario whatever the history does: the backend pids a
# Python scenario's own queries name (sqlalchemy-isolation-level sends them).
PID_IN_SENT = re.compile(r"\b\d{2,}\b")


def _behaviour(timeline: Timeline) -> tuple[Any, ...]:
    events = [(*t[:19], None if t[19] is None else tuple(PID_IN_SENT.sub("N", m) for m in t[19]), *t[20:])
              for t in (e.transcript() for e in timeline.events)]
    return (events, timeline.invariants, [e.transcript() for e in timeline.final], timeline.ended_early)


@pytest.fixture(scope="module")
def labs(server_dsn: str) -> Iterator[tuple[Lab, Lab]]:
    with open_lab(server_dsn, history=True) as on, open_lab(server_dsn, history=False) as off:
        yield on, off


RETRIES = 4
CELLS = [
    pytest.param(name, level, id=f"{name}[{level.value}]")
    for name, scenario in Catalogue().scenarios.items() if not scenario.isolationtester
    for level in scenario.levels
]


@pytest.mark.parametrize(("name", "level"), CELLS)
def test_every_catalogue_run_behaves_the_same_with_and_without_the_history(
    labs: tuple[Lab, Lab], catalogue: Catalogue, name: str, level: Level,
) -> None:
    """A few driver scenarios hang on thread timing (threads-shared-connection-serialized waits
    100 ms for a thread, bounded): on a loaded machine one run of them may differ from the next
    with or without the history. So when the first pair differs, RETRIES more pairs run, and
    some run with the history must behave exactly as some run without it: a difference the
    history causes is in every run, and fails."""
    on, off = labs
    scenario = catalogue.scenarios[name]
    try:
        recorded, plain = on.run(scenario, level), off.run(scenario, level)
    except ServerError as exc:  # e.g. a role that may not SET deadlock_timeout on this server
        pytest.skip(str(exc))
    assert recorded.history is not None and plain.history is None
    with_history, without = [_behaviour(recorded)], [_behaviour(plain)]
    for _ in range(RETRIES if with_history != without else 0):
        with_history.append(_behaviour(on.run(scenario, level)))
        without.append(_behaviour(off.run(scenario, level)))
    assert any(b in without for b in with_history), f"{len(with_history)} runs each way: the history changed the run"


class _LockWatcher:
    """Follows a run step by step and reads, after each step, every lock any backend holds on
    the history log's schema (the watched run's events also carry the server's view)."""

    def __init__(self, conn: psycopg2.extensions.connection, schema: str) -> None:
        self.conn, self.schema = conn, schema
        self.siread: list[str] = []

    def before_step(self, session: str, step: str, sql: str, *, python: bool = False) -> None:
        pass

    def after_step(self, events: Sequence[Event]) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE c.relnamespace = %s::regnamespace AND l.mode = 'SIReadLock'", [self.schema])
            self.siread += [mode for (mode,) in cur.fetchall()]


@pytest.mark.parametrize("name", [n for n, s in Catalogue().scenarios.items() if "hermitage" in s.tags])
def test_under_serializable_the_log_takes_no_siread_lock_and_the_lock_views_are_the_same(
    labs: tuple[Lab, Lab], catalogue: Catalogue, name: str,
) -> None:
    on, off = labs
    scenario = catalogue.scenarios[name]
    assert on.schemas.history is not None
    watcher = _LockWatcher(on.admin, on.schemas.history.schema)
    recorded = on.run(scenario, Level.SERIALIZABLE, watcher=watcher)
    plain = off.run(scenario, Level.SERIALIZABLE, watcher=_LockWatcher(off.admin, "pg_catalog"))  # for its views
    assert any(e.server for e in recorded.events)
    assert _behaviour(recorded) == _behaviour(plain)
    assert watcher.siread == []


def test_the_history_adds_no_connection_and_takes_its_rows_out_of_the_log(labs: tuple[Lab, Lab], catalogue: Catalogue) -> None:
    on, off = labs
    scenario = catalogue.scenarios["atm-lost-update"]
    counts = []
    for lab in (on, off):
        lab.run(scenario, Level.READ_COMMITTED)
        with lab.admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            counts.append(cur.fetchone()[0])
    assert counts[0] == counts[1]
    assert on.schemas.history is not None and on.schemas.history.schema.startswith(PREFIX)
    with on.admin.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {on.schemas.history.schema}.log")
        assert cur.fetchone()[0] == 0


def test_a_lab_without_history_records_none_and_creates_no_log(labs: tuple[Lab, Lab], catalogue: Catalogue) -> None:
    _, off = labs
    timeline = off.run(catalogue.scenarios["hermitage-g1c"], Level.READ_COMMITTED)
    assert timeline.history is None and off.schemas.history is None
    with off.admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE c.relname = 'test' AND t.tgname LIKE 'zzzz_txnlab%'")
        assert cur.fetchone()[0] == 0


def test_writes_keep_the_order_their_versions_were_installed(lab: Lab, catalogue: Catalogue) -> None:
    history = _history(lab, catalogue.scenarios["atm-lost-update"])
    accounts: list[LoggedWrite] = [w for w in history.writes if w.table == "accounts"]
    assert [w.seq for w in history.writes] == sorted(w.seq for w in history.writes)
    assert accounts[0].after == accounts[1].before  # the second UPDATE found the first's version


def test_what_a_session_s_setup_sql_wrote_is_part_of_the_state_the_first_step_found(lab: Lab) -> None:
    history = _history(lab, _scenario(ACCOUNTS, """
  - {name: b_write, session: b, sql: "UPDATE accounts SET balance = 8 WHERE id = 2"}
  - {name: b_commit, session: b, sql: COMMIT}
""", sessions="a: {setup: 'UPDATE accounts SET balance = 7 WHERE id = 1'}\n  b: {}"))
    assert sorted(history.initial) == [
        ("accounts", ("1", "alice", "7")), ("accounts", ("2", "bob", "50")), ("accounts", ("3", "carol", "0")),
    ]
    assert _changes(history) == [("accounts", "UPDATE", ("2", "bob", "50"), ("2", "bob", "8"))]
