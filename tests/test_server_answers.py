"""The server's answer to every statement, in full, in the scenario's terms: each step's
command status (a COMMIT after an error is answered ROLLBACK, in both session styles),
errors with their DETAIL, HINT and CONTEXT (backend pids named as sessions), and never
the run's internal schema name, in every renderer."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

from scenario_text import scenario_from_yaml
from terminal import terminal_stdin
from test_cli import scenario_file
from txnlab.errors import ScenarioError
from txnlab.levels import Level
from txnlab.render import html, json as json_render, markdown, text
from txnlab.render.report import RunReport
from txnlab.runner.drivers.psycopg2 import driver_reply, execute
from txnlab.runner.lab import Lab
from txnlab.runner.names import unqualified
from txnlab.runner.schemas import PREFIX
from txnlab.scenario import Catalogue, Scenario
from txnlab.timeline import Outcome
from txnlab.workflow import run_cell

COMMIT_AFTER_ERROR = """
name: commit-after-error
title: COMMIT after an error
summary: Both sessions COMMIT after an error; the server answers ROLLBACK.
setup: CREATE TABLE t (id int PRIMARY KEY);
sessions: {app: {}, psql: {autocommit: true}}
steps:
  - {name: app_ins, session: app, sql: INSERT INTO t VALUES (1)}
  - {name: app_bad, session: app, sql: SELECT 1/0}
  - {name: app_commit, session: app, sql: COMMIT}
  - {name: psql_begin, session: psql, sql: BEGIN}
  - {name: psql_bad, session: psql, sql: SELECT 1/0}
  - {name: psql_commit, session: psql, sql: COMMIT}
invariants:
  nothing_committed: SELECT count(*) = 0 FROM t
expect: {all: {errors: {app_bad: "22012", psql_bad: "22012"}, invariants: {nothing_committed: true}}}
"""

ROLLED_BACK = "the server answered ROLLBACK: nothing was committed"
RUN_SCHEMA = re.compile(re.escape(PREFIX) + r"[0-9a-f]{6}_\d+")


# -- renderers, each as the user reads it --------------------------------------------------


def _text(report: RunReport) -> str:
    return text.render_timeline(report, width=200)


def _markdown(report: RunReport) -> str:
    return markdown.render_timeline(report)


def _html(report: RunReport) -> str:
    """The page's text with its entities unescaped (`&quot;` is `"` to the reader)."""
    return unescape(html.render_report([report], "answers"))


RENDERERS: dict[str, Callable[[RunReport], str]] = {"text": _text, "markdown": _markdown, "html": _html}


def _workshop(cli, monkeypatch: pytest.MonkeyPatch, path: str, level: str, steps: int) -> str:  # type: ignore[no-untyped-def]
    """What the room sees in workshop mode (`--step --predict`, every guess "runs ok")."""
    with terminal_stdin("o\n" * steps) as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        code, out, _ = cli("run", path, "--level", level, "--step", "--predict")
    assert code in (0, 1), out
    return out


# -- 1. the command status -----------------------------------------------------------------


@pytest.fixture
def connections(scratch_dsn: str) -> Iterator[Callable[[bool], psycopg2.extensions.connection]]:
    """Open plain psycopg2 connections to the scratch database (autocommit or not), closed afterwards."""
    opened: list[psycopg2.extensions.connection] = []

    def open_one(autocommit: bool) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(scratch_dsn)
        conn.autocommit = autocommit
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()


STATES = {  # how to put a connection in each transaction status psycopg2 can COMMIT from
    "in transaction": ["SELECT 1"],
    "in failed transaction": ["SELECT 1", "SELECT 1/0"],
}


def _enter(conn: psycopg2.extensions.connection, state: str) -> None:
    if conn.autocommit:
        conn.cursor().execute("BEGIN")
    for sql in STATES[state]:
        try:
            conn.cursor().execute(sql)
        except psycopg2.errors.DivisionByZero:
            pass  # the error that leaves the transaction failed


@pytest.mark.parametrize("command", ["COMMIT", "END", "ROLLBACK", "ABORT", "commit work"])
@pytest.mark.parametrize("state", ["idle", *STATES])
def test_the_reply_derived_for_the_drivers_commit_is_what_the_server_answers_to_that_sql(
    connections, state: str, command: str
) -> None:  # type: ignore[no-untyped-def]
    """psycopg2's commit() and rollback() drop the server's reply, so txnlab derives it from the
    transaction status before the call. The same statement sent as SQL by an autocommit
    connection in the same status gives the server's own answer to compare with; outside a
    transaction psycopg2 sends nothing at all, and the step says so."""
    psql = connections(True)
    if state != "idle":
        _enter(psql, state)
    before = psql.get_transaction_status()
    with psql.cursor() as cur:
        cur.execute(command)
        answered = cur.statusmessage
    assert driver_reply(command.split()[0], before) == answered

    app = connections(False)
    if state != "idle":
        _enter(app, state)
    result = execute(app, command)
    assert result.error is None
    if state == "idle":
        assert (result.status, result.driver_sent_nothing) == (None, True)
    else:
        assert (result.status, result.driver_sent_nothing) == (answered, False)


def test_the_wire_tap_sees_the_commit_psycopg2_sends_and_nothing_when_no_transaction_is_open(lab: Lab) -> None:
    scenario = scenario_from_yaml("""
        name: driver-commits
        title: What psycopg2 sends for COMMIT and ROLLBACK
        summary: commit() and rollback() send nothing unless psycopg2 began a transaction.
        capture: true
        sessions: {app: {}, other: {}}
        steps:
          - {name: early_commit, session: app, sql: COMMIT}
          - {name: bad, session: app, sql: SELECT 1/0}
          - {name: late_commit, session: app, sql: COMMIT}
          - {name: rollback_idle, session: app, sql: ROLLBACK}
          - {name: read, session: app, sql: SELECT 1}
          - {name: commit, session: app, sql: COMMIT}
        expect: {all: {errors: {bad: "22012"}}}
    """)
    report = run_cell(lab, scenario, Level.READ_COMMITTED)
    seen = {e.step: (e.sent, e.status, e.driver_sent_nothing) for e in report.timeline.events}
    assert seen["early_commit"] == ((), None, True)
    assert seen["late_commit"] == (("COMMIT",), "ROLLBACK", False)
    assert seen["rollback_idle"] == ((), None, True)
    assert seen["commit"] == (("COMMIT",), "COMMIT", False)
    shown = _text(report)
    assert shown.count("→ ok: the driver sent nothing, no transaction was open") == 2
    assert shown.count(ROLLED_BACK) == 1


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_commit_after_an_error_shows_as_a_rollback_in_both_session_styles(lab: Lab, renderer: str) -> None:
    report = run_cell(lab, scenario_from_yaml(COMMIT_AFTER_ERROR), Level.READ_COMMITTED)
    assert report.verdict.matches_expectation  # nothing_committed: the row inserted before the error is gone
    commits = [e for e in report.timeline.events if e.step.endswith("_commit")]
    assert [(e.session, e.outcome, e.status, e.rolled_back) for e in commits] == [
        ("app", Outcome.OK, "ROLLBACK", True), ("psql", Outcome.OK, "ROLLBACK", True),
    ]
    shown = RENDERERS[renderer](report)
    if renderer == "html":  # in the step list, and as the bar's callout
        assert shown.count(f'<div class="result">→ {ROLLED_BACK}</div>') == 2
        assert shown.count('class="callout"') == 4  # 22012 twice, ROLLBACK twice
        assert shown.count(">ROLLBACK</text>") == 2
    else:
        assert shown.count(f"→ {ROLLED_BACK}") == 2


def test_json_records_every_steps_command_status_as_the_server_sent_it(lab: Lab) -> None:
    report = run_cell(lab, scenario_from_yaml(COMMIT_AFTER_ERROR), Level.READ_COMMITTED)
    events = json.loads(json_render.render_runs([report]))["runs"][0]["events"]
    assert [(e["step"], e["status"], e["driver_sent_nothing"]) for e in events] == [
        ("app_ins", "INSERT 0 1", False),
        ("app_bad", None, False),
        ("app_commit", "ROLLBACK", False),
        ("psql_begin", "BEGIN", False),
        ("psql_bad", None, False),
        ("psql_commit", "ROLLBACK", False),
    ]


def test_workshop_mode_reveals_a_commit_after_an_error_as_a_rollback(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = _workshop(cli, monkeypatch, scenario_file(tmp_path, COMMIT_AFTER_ERROR), "rc", 6)
    assert f"app: → {ROLLED_BACK}" in out and f"psql: → {ROLLED_BACK}" in out
    assert out.count("The room said it runs ok; it runs ok but the server rolled it back: right.") == 2


def test_commit_and_rollback_outside_a_transaction_and_commit_and_chain_after_an_error(lab: Lab) -> None:
    scenario = scenario_from_yaml("""
        name: siblings
        title: The other ways to end a transaction
        summary: >
          Outside a transaction COMMIT and ROLLBACK warn; after an error COMMIT AND CHAIN rolls back
          and chains, and PREPARE TRANSACTION rolls back too.
        sessions: {psql: {autocommit: true}, app: {}}
        steps:
          - {name: idle_commit, session: psql, sql: COMMIT}
          - {name: idle_rollback, session: psql, sql: ROLLBACK}
          - {name: begin, session: psql, sql: BEGIN}
          - {name: bad, session: psql, sql: SELECT 1/0}
          - {name: chain, session: psql, sql: COMMIT AND CHAIN}
          - {name: end, session: psql, sql: END}
          - {name: begin_again, session: psql, sql: BEGIN}
          - {name: bad_again, session: psql, sql: SELECT 1/0}
          - {name: prepare, session: psql, sql: PREPARE TRANSACTION 'txnlab_never_prepared'}
          - {name: app_bad, session: app, sql: SELECT 1/0}
          - {name: app_end, session: app, sql: END}
        expect: {all: {errors: {bad: "22012", bad_again: "22012", app_bad: "22012"}}}
    """)
    report = run_cell(lab, scenario, Level.READ_COMMITTED)
    assert report.verdict.matches_expectation
    seen = {e.step: (e.status, e.rolled_back, e.transaction_status, e.notices) for e in report.timeline.events}
    warning = ("WARNING:  there is no transaction in progress",)
    assert seen["idle_commit"] == ("COMMIT", False, "idle", warning)
    assert seen["idle_rollback"] == ("ROLLBACK", False, "idle", warning)
    assert seen["chain"] == ("ROLLBACK", True, "in transaction", ())  # a new transaction began
    assert seen["end"] == ("COMMIT", False, "idle", ())
    assert seen["prepare"] == ("ROLLBACK", True, "idle", ())
    assert seen["app_end"] == ("ROLLBACK", True, "idle", ())
    assert _text(report).count(ROLLED_BACK) == 3


@pytest.mark.parametrize("autocommit", [False, True])
def test_a_deferred_constraint_failing_at_commit_is_still_an_error(lab: Lab, autocommit: bool) -> None:
    scenario = scenario_from_yaml(f"""
        name: deferred
        title: A deferred foreign key fails at COMMIT
        summary: The check runs at COMMIT, which fails.
        setup: |
          CREATE TABLE parent (id int PRIMARY KEY);
          CREATE TABLE child (parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);
        sessions: {{a: {{autocommit: {str(autocommit).lower()}}}, b: {{}}}}
        steps:
          - {{name: begin, session: a, sql: BEGIN}}
          - {{name: orphan, session: a, sql: INSERT INTO child VALUES (1)}}
          - {{name: commit, session: a, sql: COMMIT}}
        expect: {{all: {{errors: {{commit: "23503"}}}}}}
    """)
    report = run_cell(lab, scenario, Level.READ_COMMITTED)
    assert report.verdict.matches_expectation
    commit = report.timeline.final_event("commit")
    assert commit is not None and commit.error is not None
    assert (commit.outcome, commit.status, commit.rolled_back) == (Outcome.ERROR, None, False)
    assert commit.error.detail == 'Key (parent_id)=(1) is not present in table "parent".'
    assert 'DETAIL: Key (parent_id)=(1) is not present in table "parent".' in _text(report)


# -- 2. full errors, in the scenario's terms ------------------------------------------------

SSI_REASON = "DETAIL: Reason code: Canceled on identification as a pivot, during commit attempt."
SSI_HINT = "HINT: The transaction might succeed if retried."


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_serialization_failure_shows_its_reason_and_hint(lab: Lab, catalogue: Catalogue, renderer: str) -> None:
    report = run_cell(lab, catalogue.resolve("write-skew-doctors"), Level.SERIALIZABLE)
    failed = report.timeline.final_event("bob_commit")
    assert failed is not None and failed.error is not None and failed.error.sqlstate == "40001"
    shown = RENDERERS[renderer](report)
    assert SSI_REASON in shown and SSI_HINT in shown


def test_workshop_mode_shows_a_serialization_failures_reason(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "200")
    out = _workshop(cli, monkeypatch, "write-skew-doctors", "ser", 6)
    assert SSI_REASON in out and SSI_HINT in out


DEADLOCK_DETAIL = re.compile(
    r"DETAIL: Session transfer2 \(pid (\d+)\) waits for ShareLock on transaction \d+; "
    r"blocked by session transfer1 \(pid (\d+)\)\."
)


def _run_or_skip(lab: Lab, scenario: Scenario) -> RunReport:
    """Run a scenario that SETs deadlock_timeout, which some roles may not (CannotRun)."""
    report = run_cell(lab, scenario, Level.READ_COMMITTED)
    if report.timeline.could_not_run:
        pytest.skip(report.timeline.could_not_run)
    return report


def _deadlock(lab: Lab, catalogue: Catalogue) -> RunReport:
    return _run_or_skip(lab, catalogue.resolve("deadlock"))


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_deadlocks_detail_names_the_sessions_not_their_pids(lab: Lab, catalogue: Catalogue, renderer: str) -> None:
    report = _deadlock(lab, catalogue)
    shown = RENDERERS[renderer](report) if renderer != "text" else text.render_timeline(report, width=400)
    found = DEADLOCK_DETAIL.search(shown)
    assert found, shown
    assert "Session transfer1 (pid " + found.group(2) + ") waits for ShareLock on transaction" in shown
    assert "HINT: See server log for query details." in shown
    assert 'CONTEXT: while updating tuple (0,1) in relation "accounts"' in shown
    assert not re.search(r"\b[Pp]rocess \d+", shown)


def test_json_keeps_the_deadlocks_raw_detail_and_who_each_pid_is(lab: Lab, catalogue: Catalogue) -> None:
    report = _deadlock(lab, catalogue)
    events = json.loads(json_render.render_runs([report]))["runs"][0]["events"]
    error = next(e["error"] for e in events if e["error"] and e["error"]["sqlstate"] == "40P01")
    victim, other = re.match(r"Process (\d+) waits for ShareLock on transaction \d+; blocked by process (\d+)\.",
                             error["detail"]).groups()
    assert error["backends"] == {victim: "session transfer2", other: "session transfer1"}
    assert error["hint"] == "See server log for query details."
    assert error["context"] == 'while updating tuple (0,1) in relation "accounts"'


def test_workshop_mode_shows_the_deadlock_in_session_names(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "400")
    out = _workshop(cli, monkeypatch, "deadlock", "rc", 8)
    assert DEADLOCK_DETAIL.search(out), out
    assert not re.search(r"\b[Pp]rocess \d+", out)


POOL_DEADLOCK = """\
SCENARIO = {
    "name": "pool-deadlock", "title": "A pool's connection in a deadlock", "summary": "s",
    "setup": "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0);",
    "sessions": {"app": {}, "b": {"setup": "SET deadlock_timeout = '50ms'"}},
    "expect": {"all": {}},
}


def update(row):
    def run_it(conn):
        conn.cursor().execute("UPDATE t SET v = 1 WHERE id = %s", [row])
    return run_it


def play(run):
    pool = run.connect()
    try:
        run.watch("the pool's connection", pool)
        run.call("app", "pool_row2", "pool: UPDATE t ... WHERE id = 2", update(2), on=pool)
        run.sql("b", "b_row1", "UPDATE t SET v = 2 WHERE id = 1")
        run.call("app", "pool_row1", "pool: UPDATE t ... WHERE id = 1", update(1), on=pool)
        run.sql("b", "b_row2", "UPDATE t SET v = 2 WHERE id = 2")
        run.finish()
    finally:
        pool.close()
"""


def test_a_deadlock_with_a_connection_of_the_scenarios_own_names_it_by_its_label(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "pool_deadlock.py"
    path.write_text(POOL_DEADLOCK)
    report = _run_or_skip(lab, Catalogue().resolve(str(path)))
    shown = text.render_timeline(report, width=400)
    assert re.search(
        r"DETAIL: Session b \(pid \d+\) waits for ShareLock on transaction \d+; "
        r"blocked by the pool's connection \(pid \d+\)\.", shown
    ), shown
    assert re.search(r"The pool's connection \(pid \d+\) waits for ShareLock", shown)


# -- 3. no internal schema name in any message ---------------------------------------------

TRIGGER_AND_VIEW = """
name: qualified-names
title: Names the server qualifies
summary: A trigger function with a safe search_path, and a materialized view.
setup: |
  CREATE TABLE accounts (id int PRIMARY KEY, balance int);
  INSERT INTO accounts VALUES (1, 100);
  CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $$
  BEGIN
    RAISE NOTICE 'audited %', TG_RELID::regclass;
    IF NEW.balance < 0 THEN
      RAISE EXCEPTION 'balance of % would go below zero', TG_RELID::regclass USING HINT = TG_RELID::regclass;
    END IF;
    RETURN NEW;
  END $$;
  CREATE TRIGGER audit BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION audit();
  CREATE MATERIALIZED VIEW totals AS SELECT sum(balance) AS total FROM accounts;
sessions: {a: {}, b: {autocommit: true}}
steps:
  - {name: spend, session: a, sql: UPDATE accounts SET balance = 50 WHERE id = 1}
  - {name: overspend, session: a, sql: UPDATE accounts SET balance = -50 WHERE id = 1}
  - {name: refresh, session: b, sql: REFRESH MATERIALIZED VIEW CONCURRENTLY totals}
expect: {all: {errors: {overspend: P0001, refresh: "55000"}}}
"""


def test_errors_contexts_and_notices_never_name_the_run_schema(lab: Lab) -> None:
    report = run_cell(lab, scenario_from_yaml(TRIGGER_AND_VIEW), Level.READ_COMMITTED)
    spend, overspend, refresh = (report.timeline.final_event(s) for s in ("spend", "overspend", "refresh"))
    assert spend is not None and spend.notices == ("NOTICE:  audited accounts",)
    assert overspend is not None and overspend.error is not None
    assert overspend.error.message == "balance of accounts would go below zero"
    assert overspend.error.hint == "accounts"
    assert overspend.error.context == "PL/pgSQL function audit() line 5 at RAISE"
    assert refresh is not None and refresh.error is not None
    assert refresh.error.message == 'cannot refresh materialized view "totals" concurrently'
    for render in (*RENDERERS.values(), lambda r: json_render.render_runs([r])):
        assert not RUN_SCHEMA.search(render(report))


def _failure(lab: Lab, yaml_text: str) -> str:
    with pytest.raises(ScenarioError) as raised:
        lab.run(scenario_from_yaml(yaml_text), Level.READ_COMMITTED)
    return str(raised.value)


VIEW = "CREATE MATERIALIZED VIEW totals AS SELECT 1 AS total"
REFRESH = "REFRESH MATERIALIZED VIEW CONCURRENTLY totals"
NOT_CONCURRENTLY = '55000 cannot refresh materialized view "totals" concurrently'


@pytest.mark.parametrize(
    ("where", "key", "line", "what"),
    [
        ("setup", f"setup: [\"{VIEW}\", \"{REFRESH}\"]", 4, "setup SQL"),
        ("session setup", f"setup: \"{VIEW}\"\nsessions: {{a: {{setup: \"{REFRESH}\"}}, b: {{}}}}", 5,
         "session a setup SQL"),
        ("session teardown", f"setup: \"{VIEW}\"\nsessions: {{a: {{teardown: \"{REFRESH}\"}}, b: {{}}}}", 5,
         "session a teardown SQL"),
        ("teardown", f"setup: \"{VIEW}\"\nteardown: \"{REFRESH}\"", 5, "teardown SQL"),
    ],
)
def test_a_failing_setup_or_teardown_names_objects_without_the_run_schema(
    lab: Lab, where: str, key: str, line: int, what: str
) -> None:
    sessions = "" if "sessions:" in key else "\nsessions: {a: {}, b: {}}"
    message = _failure(lab, f"name: {where.replace(' ', '-')}\ntitle: t\nsummary: s\n{key}{sessions}\n"
                            "steps: [{name: s1, session: a, sql: SELECT 1}]\nexpect: {all: {}}\n")
    assert message == f"inline.yaml:{line}: {what} failed: {NOT_CONCURRENTLY}"


def test_a_failing_invariant_names_objects_without_the_run_schema(lab: Lab) -> None:
    message = _failure(lab, f"""
        name: invariant
        title: t
        summary: s
        setup: |
          {VIEW};
          CREATE FUNCTION refreshed() RETURNS boolean LANGUAGE plpgsql AS $$
          BEGIN {REFRESH}; RETURN true; END $$;
        sessions: {{a: {{}}, b: {{}}}}
        steps: [{{name: s1, session: a, sql: SELECT 1}}]
        invariants: {{fresh: SELECT refreshed()}}
        expect: {{all: {{}}}}
    """)
    assert message == f"inline.yaml:11: invariant fresh failed: {NOT_CONCURRENTLY}"


def test_a_users_own_schema_with_a_similar_name_is_left_as_it_is(lab: Lab) -> None:
    report = run_cell(lab, scenario_from_yaml("""
        name: own-schema
        title: A schema of the user's own
        summary: Its name starts like txnlab's run schemas.
        setup: |
          CREATE SCHEMA IF NOT EXISTS txnlab_run_mine;
          CREATE MATERIALIZED VIEW IF NOT EXISTS txnlab_run_mine.totals AS SELECT 1 AS total;
        teardown: DROP SCHEMA txnlab_run_mine CASCADE
        sessions: {a: {}, b: {}}
        steps:
          - {name: refresh, session: a, sql: REFRESH MATERIALIZED VIEW CONCURRENTLY txnlab_run_mine.totals}
        expect: {all: {errors: {refresh: "55000"}}}
    """), Level.READ_COMMITTED)
    refresh = report.timeline.final_event("refresh")
    assert refresh is not None and refresh.error is not None
    assert refresh.error.message == 'cannot refresh materialized view "txnlab_run_mine.totals" concurrently'


def test_only_the_exact_run_schema_is_taken_out_of_a_text() -> None:
    schema = "txnlab_run_ab12cd_1"
    assert unqualified(f'relation "{schema}.t" and {schema}.f() in "{schema}"."T"', schema) == (
        'relation "t" and f() in "T"'
    )
    assert unqualified(f"permission denied for schema {schema}", schema) == (
        "permission denied for schema the run's schema"
    )
    for similar in ("txnlab_run_ab12cd_10.t", "my_txnlab_run_ab12cd_1.t", "txnlab_run_ab12cd_1x.t"):
        assert unqualified(similar, schema) == similar


def test_a_server_error_raised_by_play_names_objects_without_the_run_schema(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "refresh.py"
    path.write_text(textwrap.dedent(f"""\
        SCENARIO = {{"name": "refresh", "title": "t", "summary": "s", "sessions": {{"a": {{}}, "b": {{}}}},
                    "setup": "{VIEW}", "expect": {{"all": {{}}}}}}


        def play(run):
            conn = run.connect()
            try:
                conn.cursor().execute("{REFRESH}")
            finally:
                conn.close()
    """))
    with pytest.raises(ScenarioError) as raised:
        lab.run(Catalogue().resolve(str(path)), Level.READ_COMMITTED)
    assert str(raised.value) == (
        f'{path}:8: play() raised ObjectNotInPrerequisiteState: cannot refresh materialized view "totals" concurrently'
    )
