"""psycopg 3 sessions (runner/drivers/psycopg.py) on a real server: what they send on the wire,
and that what they record (values, errors, notices, statuses) is what psycopg2 sessions record
for the same statements, except where the driver itself differs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from scenario_text import scenario_from_yaml
from txnlab.levels import Level
from txnlab.runner.drivers.base import DriverSession
from txnlab.runner.drivers.psycopg import PsycopgSession
from txnlab.runner.drivers.psycopg2 import Psycopg2Session
from txnlab.runner.execute import error_info
from txnlab.runner.lab import Lab
from txnlab.scenario.model import SessionSpec
from txnlab.server.connect import connect
from txnlab.timeline import Outcome

Opened = Callable[[type[DriverSession]], DriverSession]


@pytest.fixture
def opened(scratch_dsn: str) -> Iterator[Opened]:
    """Open sessions of a driver class on the scratch database; all are closed afterwards."""
    sessions: list[DriverSession] = []

    def open_session(cls: type[DriverSession]) -> DriverSession:
        sessions.append(cls(scratch_dsn))
        return sessions[-1]

    yield open_session
    for session in sessions:
        session.close()


IMPLICIT_BEGIN = """
    name: psycopg-implicit-begin
    title: psycopg-implicit-begin
    summary: A test of psycopg 3 sessions.
    capture: true
    setup: CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10);
    sessions:
      app: {driver: psycopg}
      ro: {driver: psycopg, read_only: true, deferrable: true}
    steps:
      - {name: app_read, session: app, sql: SELECT v FROM t WHERE id = 1}
      - {name: app_commit, session: app, sql: COMMIT}
      - {name: app_commit_again, session: app, sql: COMMIT}
      - {name: ro_read, session: ro, sql: SELECT count(*) FROM t}
      - {name: ro_rollback, session: ro, sql: ROLLBACK}
    expect:
      all: {}
"""


@pytest.mark.parametrize("level", list(Level), ids=lambda level: level.value)
def test_psycopg_begins_implicitly_with_the_level_read_only_and_deferrable_it_was_given(
    lab: Lab, level: Level
) -> None:
    timeline = lab.run(scenario_from_yaml(IMPLICIT_BEGIN), level)
    events = {e.step: e for e in timeline.events}
    assert events["app_read"].sent == (f"BEGIN ISOLATION LEVEL {level.sql}", "SELECT v FROM t WHERE id = 1")
    assert events["app_read"].server[0].state == "idle in transaction"  # what the server saw
    assert events["app_read"].driver_status == "TransactionStatus.INTRANS"
    assert (events["app_commit"].sent, events["app_commit"].status) == (("COMMIT",), "COMMIT")
    # commit() with no transaction open sends nothing (psycopg/_connection_base.py, _commit_gen)
    assert events["app_commit_again"].sent == () and events["app_commit_again"].driver_sent_nothing
    assert events["ro_read"].sent == (
        f"BEGIN ISOLATION LEVEL {level.sql} READ ONLY DEFERRABLE", "SELECT count(*) FROM t"
    )
    assert (events["ro_rollback"].sent, events["ro_rollback"].status) == (("ROLLBACK",), "ROLLBACK")
    assert timeline.drivers == {"app": ("psycopg", psycopg.__version__), "ro": ("psycopg", psycopg.__version__)}


def test_an_autocommit_psycopg_session_sends_sql_as_written(lab: Lab) -> None:
    scenario = scenario_from_yaml("""
        name: psycopg-autocommit
        title: psycopg-autocommit
        summary: A test of psycopg 3 sessions.
        capture: true
        sessions:
          app: {driver: psycopg, autocommit: true}
          other: {}
        steps:
          - {name: begin, session: app, sql: BEGIN}
          - {name: one, session: app, sql: SELECT 1 AS one}
          - {name: commit, session: app, sql: COMMIT}
          - {name: stray, session: app, sql: ROLLBACK}
        expect:
          all: {}
    """)
    timeline = lab.run(scenario, Level.SERIALIZABLE)
    events = {e.step: e for e in timeline.events}
    assert [events[s].sent for s in ("begin", "one", "commit", "stray")] == [
        ("BEGIN",), ("SELECT 1 AS one",), ("COMMIT",), ("ROLLBACK",)
    ]
    assert events["stray"].notices == ("WARNING:  there is no transaction in progress",)
    assert events["one"].rows == (("1",),)
    # the explicit BEGIN got the run's level (SET SESSION CHARACTERISTICS, as for psycopg2)
    assert timeline.drivers["other"][0] == "psycopg2"


VALUES = [
    "SELECT ARRAY[1, NULL, 3]::int[] AS a, ARRAY['a b', 'c\"d', NULL]::text[] AS t, '{{1,2},{3,4}}'::int[][] AS m",
    "SELECT ROW(1, 'x y', NULL)::record AS r, ROW(1, ARRAY[2])::record AS nested",
    "SELECT int4range(1, 10) AS r, tstzrange('2024-01-01', NULL) AS open, numrange(1.5, 2.5, '[]') AS n",
    "SET IntervalStyle = 'iso_8601'; SELECT interval '1 year 2 mons 3 days 04:05:06.789' AS i",
    "SET IntervalStyle = 'sql_standard'; SELECT interval '-1 day 02:00' AS i",
    "SET IntervalStyle = 'postgres_verbose'; SELECT interval '3 days 1 hour ago' AS i",
    "SET TimeZone = 'Asia/Kolkata'; SELECT timestamptz '2024-03-10 12:34:56.789+00' AS ts",
    "SET DateStyle = 'SQL, DMY'; SELECT date '2024-12-31' AS d, timestamp '2024-12-31 23:59:59' AS ts",
    "SELECT '\\x00ff10'::bytea AS b, 'NaN'::numeric AS nan, 1.50::numeric(10,4) AS n, 'Infinity'::float8 AS inf",
    "SET bytea_output = 'escape'; SELECT '\\x00ff41'::bytea AS b",
    "SELECT '{\"b\": [1, 2.50], \"a\": null}'::json AS j, '{\"b\": [1, 2.50], \"a\": null}'::jsonb AS jb",
    "SELECT 0.1::float4 AS f4, 1e100::float8 AS f8, 123456789012::bigint AS big, true AS yes, NULL::int AS nothing",
    "SELECT 'a\tb\nc'::text AS t, ''::text AS empty, 'é€😀'::text AS unicode, '192.168.0.1/24'::inet AS addr",
    "SELECT gen_random_uuid() IS NOT NULL AS has_uuid, '00000000-0000-0000-0000-000000000001'::uuid AS u, "
    "'12:34:56+05:30'::timetz AS tz, '1 2'::int2vector AS v, 'pg_class'::regclass AS rc",
    "SELECT x FROM generate_series(1, 3) AS x",
    "VALUES (1, 'one'), (2, NULL)",
]


@pytest.mark.parametrize("sql", VALUES)
def test_psycopg_rows_are_the_servers_text_exactly_as_psycopg2_records_them(opened: Opened, sql: str) -> None:
    old, new = opened(Psycopg2Session), opened(PsycopgSession)
    expected, got = old.execute(sql), new.execute(sql)
    assert got.error is None, got.error
    assert (got.columns, got.rows, got.type_oids, got.rowcount, got.status, got.styles) == (
        expected.columns, expected.rows, expected.type_oids, expected.rowcount, expected.status, expected.styles
    )


def test_psycopg_records_statuses_rowcounts_and_column_origins_as_psycopg2_does(opened: Opened) -> None:
    old, new = opened(Psycopg2Session), opened(PsycopgSession)
    for session in (old, new):
        session.execute("CREATE TEMP TABLE accounts (id int PRIMARY KEY, balance int)")
    for sql in ("INSERT INTO accounts VALUES (1, 10), (2, 20)", "UPDATE accounts SET balance = 0 WHERE id > 0",
                "SELECT id, balance, balance + 1 AS more FROM accounts ORDER BY id", "DELETE FROM accounts WHERE id = 2",
                "SELECT 1 AS a; SELECT 2 AS b, 3 AS c"):
        expected, got = old.execute(sql), new.execute(sql)
        assert (got.status, got.rowcount, got.columns, got.rows) == (
            expected.status, expected.rowcount, expected.columns, expected.rows
        ), sql
        assert [attnum for _, attnum in got.column_origins or ()] == [a for _, a in expected.column_origins or ()]
        assert all((table != 0) == (attnum != 0) for table, attnum in got.column_origins or ())


def test_psycopg_errors_carry_the_servers_sqlstate_message_detail_hint_and_context(opened: Opened) -> None:
    old, new = opened(Psycopg2Session), opened(PsycopgSession)
    sql = ("DO $$ BEGIN RAISE EXCEPTION 'no funds' USING ERRCODE = 'P0001', DETAIL = 'balance 0', "
           "HINT = 'deposit first'; END $$")
    expected, got = old.execute(sql).error, new.execute(sql).error
    assert expected is not None and got is not None
    assert got.exception == "psycopg.errors.RaiseException"
    assert (got.sqlstate, got.message, got.detail, got.hint, got.context) == (
        "P0001", "no funds", "balance 0", "deposit first", expected.context
    )
    assert got.context and "PL/pgSQL" in got.context
    assert new.transaction_status() == "in failed transaction"
    assert new.driver_status() == "TransactionStatus.INERROR"


def test_a_commit_in_a_failed_psycopg_transaction_is_answered_rollback(opened: Opened) -> None:
    new = opened(PsycopgSession)
    assert new.execute("SELECT 1/0").error.sqlstate == "22012"  # type: ignore[union-attr]
    commit = new.execute("COMMIT")
    assert (commit.status, commit.error, commit.driver_sent_nothing) == ("ROLLBACK", None, False)
    assert commit.transaction_status == "idle" and commit.driver_status == "TransactionStatus.IDLE"


def test_psycopg_notices_read_as_psycopg2_records_them(opened: Opened) -> None:
    old, new = opened(Psycopg2Session), opened(PsycopgSession)
    sql = ("DO $$ BEGIN RAISE NOTICE 'first'; RAISE WARNING 'second' USING DETAIL = 'why', HINT = 'what to do'; "
           "END $$")
    expected, got = old.execute(sql), new.execute(sql)
    assert got.notices == expected.notices
    assert got.notices == ("NOTICE:  first", "WARNING:  second\nDETAIL:  why\nHINT:  what to do")


def test_error_info_finds_a_psycopg_error_behind_a_wrapper(scratch_dsn: str) -> None:
    class Wrapper(Exception):
        def __init__(self, orig: BaseException) -> None:
            super().__init__("wrapped")
            self.orig = orig

    with psycopg.connect(scratch_dsn) as conn:
        with pytest.raises(psycopg.Error) as raised:
            conn.execute("SELECT * FROM no_such_table")
    info = error_info(Wrapper(raised.value))
    assert (info.exception.rsplit(".", 1)[-1], info.sqlstate) == ("Wrapper", "42P01")
    assert info.message == 'relation "no_such_table" does not exist'


def test_a_psycopg_session_the_server_terminates_is_lost(opened: Opened, scratch_dsn: str) -> None:
    new = opened(PsycopgSession)
    admin = connect(scratch_dsn, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", [new.pid])
    finally:
        admin.close()
    result = new.execute("SELECT 1")
    assert result.error is not None and result.error.sqlstate in ("57P01", None)
    assert new.broken and not new.closed
    assert result.transaction_status == "closed" and result.driver_status == "closed"


def test_a_terminated_psycopg_session_ends_the_run_in_one_line(lab: Lab) -> None:
    scenario = scenario_from_yaml("""
        name: psycopg-terminated
        title: psycopg-terminated
        summary: A test of psycopg 3 sessions.
        sessions:
          victim: {driver: psycopg}
          killer: {autocommit: true}
        steps:
          - {name: who, session: victim, sql: SELECT pg_backend_pid() AS pid}
          - {name: kill, session: killer, sql: 'SELECT pg_terminate_backend(${who.pid})'}
        expect:
          all: {}
    """)
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    ended = [e for e in timeline.events if e.outcome is Outcome.ENDED]
    assert [e.session for e in ended] == ["victim"]
    assert ended[0].error is not None and ended[0].error.sqlstate == "57P01"


def test_lock_waits_of_psycopg_sessions_are_seen_by_the_monitor(lab: Lab) -> None:
    scenario = scenario_from_yaml("""
        name: psycopg-lock-wait
        title: psycopg-lock-wait
        summary: A test of psycopg 3 sessions.
        setup: CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0);
        sessions:
          first: {driver: psycopg}
          second: {driver: psycopg}
        steps:
          - {name: first_update, session: first, sql: UPDATE t SET v = 1 WHERE id = 1}
          - {name: second_update, session: second, sql: UPDATE t SET v = 2 WHERE id = 1}
          - {name: first_commit, session: first, sql: COMMIT}
          - {name: second_commit, session: second, sql: COMMIT}
        expect:
          all: {}
    """)
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    blocked = [e for e in timeline.events if e.outcome is Outcome.BLOCKED]
    assert [(e.step, e.blocked_by) for e in blocked] == [("second_update", ("first",))]
    assert blocked[0].lock is not None and blocked[0].lock.locktype == "transactionid"
    released = timeline.final_event("second_update")
    assert released is not None and released.after_wait and released.status == "UPDATE 1"


def test_a_psycopg_session_reset_between_runs_holds_nothing(opened: Opened, catalogue) -> None:  # type: ignore[no-untyped-def]
    new = opened(PsycopgSession)
    scenario = catalogue.scenarios["dirty-read"]
    spec = SessionSpec(name="x", driver="psycopg")
    new.execute("SELECT pg_advisory_lock(42)")
    new.execute("LISTEN somewhere")
    new.configure(scenario, spec, Level.REPEATABLE_READ, "public")
    status = new.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
    assert status.rows == (("0",),)
    listening = new.execute("SELECT count(*) FROM pg_listening_channels()")
    assert listening.rows == (("0",),)
    level = new.execute("SHOW transaction_isolation")
    assert level.rows == (("repeatable read",),)
