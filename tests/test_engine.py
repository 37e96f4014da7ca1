"""The runner against a real server: waits are detected by asking the server, errors keep
their SQLSTATE, a hanging step is cancelled, and every run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from scenario_text import scenario_from_yaml

from txnlab.checks import check
from txnlab.errors import ExitCode, ScenarioError, TxnlabError
from txnlab.levels import Level
from txnlab.render import text
from txnlab.render.report import RunReport
from txnlab.runner.execute import CannotRun
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue
from txnlab.timeline import Outcome

ROW_LOCK = """
name: row-lock
title: Row lock
summary: b waits for a's row lock.
setup: CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10);
sessions: {a: {}, b: {}}
steps:
  - {name: a_update, session: a, sql: UPDATE t SET v = 11 WHERE id = 1}
  - {name: b_update, session: b, sql: UPDATE t SET v = 12 WHERE id = 1 RETURNING v}
  - {name: a_commit, session: a, sql: COMMIT}
  - {name: b_commit, session: b, sql: COMMIT}
expect:
  all: {blocked: [b_update]}
"""


def test_a_step_waiting_for_a_lock_is_recorded_as_blocked_with_its_blocker(lab: Lab) -> None:
    timeline = lab.run(scenario_from_yaml(ROW_LOCK), Level.READ_COMMITTED)
    outcomes = [(e.step, e.outcome, e.after_wait) for e in timeline.events]
    assert outcomes == [
        ("a_update", Outcome.OK, False),
        ("b_update", Outcome.BLOCKED, False),
        ("a_commit", Outcome.OK, False),
        ("b_update", Outcome.OK, True),  # completed after the wait, right after its cause
        ("b_commit", Outcome.OK, False),
    ]
    blocked = timeline.events[1]
    assert blocked.blocked_by == ("a",)
    assert blocked.lock is not None and blocked.lock.locktype == "transactionid"
    assert timeline.events[3].rows == (("12",),) and timeline.events[3].columns == ("v",)


def test_the_connection_transaction_status_is_recorded_after_each_step(lab: Lab) -> None:
    timeline = lab.run(scenario_from_yaml(ROW_LOCK), Level.READ_COMMITTED)
    assert [e.transaction_status for e in timeline.events if e.outcome is not Outcome.BLOCKED] == [
        "in transaction", "idle", "in transaction", "idle",
    ]


def test_the_same_blocking_scenario_gives_the_same_timeline_twenty_times(lab: Lab, catalogue) -> None:  # type: ignore[no-untyped-def]
    scenario = catalogue.resolve("atm-lost-update")
    first = lab.run(scenario, Level.READ_COMMITTED).transcript()
    assert any(event[3] == "blocked" for event in first)
    for _ in range(19):
        assert lab.run(scenario, Level.READ_COMMITTED).transcript() == first


def test_an_error_keeps_sqlstate_exception_class_and_message(lab: Lab) -> None:
    scenario = scenario_from_yaml("""
        name: errors
        title: Errors
        summary: A failed statement aborts the transaction.
        setup: CREATE TABLE t (v int CHECK (v > 0));
        sessions: {a: {}, b: {}}
        steps:
          - {name: bad, session: a, sql: INSERT INTO t VALUES (-1)}
          - {name: ignored, session: a, sql: SELECT 1}
          - {name: rollback, session: a, sql: ROLLBACK}
          - {name: fine, session: b, sql: SELECT 1 AS one}
        expect: {all: {errors: {bad: "23514", ignored: 25P02}}}
    """)
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    bad, ignored = timeline.events[0], timeline.events[1]
    assert bad.error is not None and bad.error.sqlstate == "23514"
    assert bad.error.exception == "psycopg2.errors.CheckViolation"
    assert "violates check constraint" in bad.error.message
    assert bad.transaction_status == "in failed transaction"
    assert ignored.error is not None and ignored.error.exception == "psycopg2.errors.InFailedSqlTransaction"
    assert timeline.events[2].transaction_status == "idle"


def test_notices_are_recorded_per_session(lab: Lab) -> None:
    scenario = scenario_from_yaml("""
        name: notices
        title: Notices
        summary: RAISE NOTICE reaches the session that caused it.
        sessions: {a: {}, b: {}}
        steps:
          - {name: shout, session: a, sql: "DO $$ BEGIN RAISE NOTICE 'hello from a'; END $$"}
          - {name: quiet, session: b, sql: SELECT 1}
        expect: {all: {}}
    """)
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    assert timeline.events[0].notices == ("NOTICE:  hello from a",)
    assert timeline.events[1].notices == ()


def test_a_hanging_step_is_cancelled_and_the_run_ends_cleanly(scratch_dsn: str) -> None:
    scenario = scenario_from_yaml("""
        name: hang
        title: Hang
        summary: A step that never finishes.
        sessions: {a: {}, b: {}}
        steps:
          - {name: sleepy, session: a, sql: SELECT pg_sleep(60)}
          - {name: never, session: b, sql: SELECT 1}
        expect: {all: {}}
    """)
    lab = Lab(scratch_dsn, step_timeout=0.5)
    try:
        started = time.perf_counter()
        timeline = lab.run(scenario, Level.READ_COMMITTED)
        elapsed = time.perf_counter() - started
        assert [(e.step, e.outcome) for e in timeline.events] == [("sleepy", Outcome.TIMEOUT)]
        assert timeline.events[0].error is not None and timeline.events[0].error.sqlstate == "57014"
        assert timeline.ended_early is not None and "sleepy" in timeline.ended_early
        assert elapsed < 3
        with lab.admin.cursor() as cur:  # the session is idle again and holds nothing
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'txnlab:%' "
                "AND state <> 'idle' AND datname = current_database()"
            )
            assert cur.fetchone()[0] == 0
    finally:
        lab.close()


def test_three_sessions_and_a_wait_queued_behind_another_wait(lab: Lab) -> None:
    scenario = scenario_from_yaml("""
        name: queue
        title: Queue
        summary: c queues behind b's pending ACCESS EXCLUSIVE request.
        setup: CREATE TABLE t (id int);
        sessions: {a: {}, b: {}, c: {}}
        steps:
          - {name: a_read, session: a, sql: SELECT count(*) FROM t}
          - {name: b_alter, session: b, sql: ALTER TABLE t ADD COLUMN x int}
          - {name: c_read, session: c, sql: SELECT count(*) FROM t}
          - {name: a_commit, session: a, sql: COMMIT}
          - {name: b_commit, session: b, sql: COMMIT}
        expect: {all: {blocked: [b_alter, c_read]}}
    """)
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    events = [(e.step, e.outcome.value, e.blocked_by) for e in timeline.events]
    assert events == [
        ("a_read", "ok", ()),
        ("b_alter", "blocked", ("a",)),
        ("c_read", "blocked", ("b",)),
        ("a_commit", "ok", ()),
        ("b_alter", "ok", ("a",)),
        ("b_commit", "ok", ()),
        ("c_read", "ok", ("b",)),
    ]


def test_a_value_read_by_an_earlier_step_is_substituted_as_a_literal(lab: Lab) -> None:
    scenario = scenario_from_yaml("""
        name: substitute
        title: Substitute
        summary: The second step uses what the first one read.
        sessions: {a: {}, b: {}}
        steps:
          - {name: read, session: a, sql: "SELECT 'it''s' AS word, 41 AS n"}
          - {name: use, session: b, sql: "SELECT ${read.word} AS word, ${read.n} + 1 AS n"}
          - {name: missing, session: b, sql: "SELECT ${use.nothing}"}
        expect: {all: {}}
    """)
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    assert timeline.events[1].sql == "SELECT 'it''s'::text AS word, '41'::integer + 1 AS n"
    assert timeline.events[1].rows == (("it's", "42"),)
    assert timeline.events[2].error is not None and "no column 'nothing'" in timeline.events[2].error.message


def test_a_deferrable_reader_waiting_for_a_safe_snapshot_counts_as_blocked(lab: Lab) -> None:
    scenario = scenario_from_yaml("""
        name: safe-snapshot
        title: Safe snapshot
        summary: A SERIALIZABLE READ ONLY DEFERRABLE transaction waits out a read-write one.
        setup: CREATE TABLE t (v int); INSERT INTO t VALUES (1);
        sessions:
          writer: {}
          reader: {read_only: true, deferrable: true}
        steps:
          - {name: w_read, session: writer, sql: SELECT v FROM t}
          - {name: w_write, session: writer, sql: UPDATE t SET v = 2}
          - {name: r_read, session: reader, sql: SELECT v FROM t}
          - {name: w_commit, session: writer, sql: COMMIT}
        levels: [ser]
        expect: {ser: {blocked: [r_read]}}
    """)
    timeline = lab.run(scenario, Level.SERIALIZABLE)
    r_read = [e for e in timeline.events if e.step == "r_read"]
    assert [e.outcome for e in r_read] == [Outcome.BLOCKED, Outcome.OK]
    assert r_read[0].blocked_by == ("writer",)
    assert r_read[0].lock is not None and r_read[0].lock.locktype is None  # no lock: a snapshot wait
    assert r_read[1].rows == (("1",),)  # its snapshot predates the commit; it waited until that was safe


def test_a_session_left_idle_by_a_smaller_scenario_holds_no_advisory_lock(lab: Lab) -> None:
    holder = scenario_from_yaml("""
        name: holder
        title: Holder
        summary: The third session takes a session-level advisory lock.
        sessions: {a: {}, b: {}, c: {autocommit: true}}
        steps:
          - {name: take, session: c, sql: SELECT pg_advisory_lock(42)}
        expect: {all: {}}
    """)
    taker = scenario_from_yaml("""
        name: taker
        title: Taker
        summary: A later run with two sessions must find the lock free.
        sessions: {a: {autocommit: true}, b: {}}
        steps:
          - {name: try_lock, session: a, sql: "SELECT pg_try_advisory_lock(42) AS got, pg_advisory_unlock(42)"}
        expect: {all: {}}
    """)
    lab.run(holder, Level.READ_COMMITTED)
    timeline = lab.run(taker, Level.READ_COMMITTED)
    assert timeline.events[0].rows == (("t", "t"),)


# -- the server ends a session; the scenario's own SQL fails ------------------------------

IDLE_TIMEOUT = """
name: idle
title: Idle
summary: The server ends session a, idle in its transaction, after a's last step.
setup: CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10);
sessions:
  a: {setup: "SET idle_in_transaction_session_timeout = '50ms'"}
  b: {}
steps:
  - {name: a_write, session: a, sql: UPDATE t SET v = 11 WHERE id = 1}
  - {name: b_sleep, session: b, sql: SELECT pg_sleep(0.3)}
expect: {all: {}}
"""


def test_a_session_the_server_ends_after_its_last_step_is_reported_and_the_run_finishes(lab: Lab) -> None:
    scenario = scenario_from_yaml(IDLE_TIMEOUT)
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    ended = [e for e in timeline.events if e.outcome is Outcome.ENDED]
    assert [(e.session, e.transaction_status) for e in ended] == [("a", "closed")]
    assert ended[0].error is not None and ended[0].error.message  # the driver's reason
    verdict = check(scenario, timeline)
    assert verdict.matches_expectation  # not a failed step: the run finished normally
    assert "⊘ the server ended the session: " in text.render_timeline(RunReport(scenario, timeline, verdict))
    again = lab.run(scenario_from_yaml(ROW_LOCK), Level.READ_COMMITTED)  # the worker was replaced
    assert [e.outcome for e in again.events][:2] == [Outcome.OK, Outcome.BLOCKED]


def _failure(lab: Lab, text: str) -> TxnlabError:
    with pytest.raises(TxnlabError) as raised:
        lab.run(scenario_from_yaml(text), Level.READ_COMMITTED)
    return raised.value


def test_setup_sql_that_fails_names_file_line_and_sqlstate_and_is_the_files_fault(lab: Lab) -> None:
    error = _failure(lab, """
        name: bad-setup
        title: Bad setup
        summary: The third line of the first setup block names a table that does not exist.
        setup:
          - |
            CREATE TABLE t (id int);
            INSERT INTO t VALUES (1);
            INSERT INTO nope VALUES (1);
          - CREATE TABLE u (id int)
        sessions: {a: {}, b: {}}
        steps: [{name: s, session: a, sql: SELECT 1}]
        expect: {all: {}}
    """)
    assert isinstance(error, ScenarioError) and error.exit_code == ExitCode.BAD_INPUT
    assert str(error) == 'inline.yaml:9: setup SQL failed: 42P01 relation "nope" does not exist'


def test_a_syntax_error_in_a_later_setup_block_points_at_that_block(lab: Lab) -> None:
    error = _failure(lab, """
        name: bad-setup
        title: Bad setup
        summary: The second setup block has a syntax error on its second line.
        setup:
          - CREATE TABLE t (id int)
          - |
            CREATE TABLE u (id int);
            SELEC 1;
        sessions: {a: {}, b: {}}
        steps: [{name: s, session: a, sql: SELECT 1}]
        expect: {all: {}}
    """)
    assert str(error).startswith('inline.yaml:9: setup SQL failed: 42601 syntax error at or near "SELEC"')


def test_session_setup_teardown_and_invariant_failures_point_at_their_lines(lab: Lab) -> None:
    base = """
        name: bad
        title: Bad
        summary: One piece of SQL fails.
        setup: CREATE TABLE t (id int)
        sessions:
          a: {SESSION}
          b: {}
        steps: [{name: s, session: a, sql: SELECT 1}]
        invariants:
          fine: SELECT true
          INVARIANT
        expect: {all: {}}
    """

    def failing(session: str = "", invariant: str = "other: SELECT true") -> str:
        return str(_failure(lab, base.replace("SESSION", session).replace("INVARIANT", invariant)))

    assert failing(session="setup: [SELECT 1, SELECT nope]") == (
        'inline.yaml:7: session a setup SQL failed: 42703 column "nope" does not exist'
    )
    assert failing(session="teardown: DROP TABLE nope") == (
        'inline.yaml:7: session a teardown SQL failed: 42P01 table "nope" does not exist'
    )
    assert failing(invariant="broken: SELECT 1/0 = 1") == (
        "inline.yaml:12: invariant broken failed: 22012 division by zero"
    )
    assert failing(invariant="counted: SELECT count(*) FROM t") == (
        "inline.yaml:12: invariant counted must return one boolean, got [(0,)]"
    )


def test_a_missing_extension_is_the_servers_side_with_file_and_line(lab: Lab) -> None:
    error = _failure(lab, """
        name: needs-extension
        title: Needs an extension
        summary: The server has no such extension.
        setup: |
          CREATE TABLE t (id int);
          CREATE EXTENSION txnlab_no_such_extension;
        sessions: {a: {}, b: {}}
        steps: [{name: s, session: a, sql: SELECT 1}]
        expect: {all: {}}
    """)
    assert isinstance(error, CannotRun) and error.exit_code == ExitCode.SERVER
    assert str(error) == 'inline.yaml:7: setup SQL failed: 0A000 extension "txnlab_no_such_extension" is not available'


def test_an_exception_in_play_points_at_the_scenario_line_that_raised_it(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "raises.py"
    path.write_text(textwrap.dedent("""\
        SCENARIO = {"name": "raises", "title": "t", "summary": "s", "sessions": {"a": {}, "b": {}},
                    "expect": {"all": {}}}


        def helper(run):
            return {}["missing"]


        def play(run):
            run.sql("a", "s", "SELECT 1")
            helper(run)
    """))
    with pytest.raises(ScenarioError) as raised:
        lab.run(Catalogue().resolve(str(path)), Level.READ_COMMITTED)
    assert str(raised.value) == f"{path}:6: play() raised KeyError: 'missing'"


# -- a server that cannot run one scenario ------------------------------------------------

def _txnlab(*args: str) -> tuple[int, str, str]:
    """The real CLI in a subprocess: (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "txnlab", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return done.returncode, done.stdout, done.stderr


def test_a_cell_missing_a_privilege_is_shown_as_could_not_run_and_the_rest_still_run(role) -> None:  # type: ignore[no-untyped-def]
    dsn = role("txnlab_no_deadlock_timeout", "CREATEDB NOSUPERUSER")  # may not SET deadlock_timeout
    code, out, err = _txnlab("matrix", "atm-lost-update", "deadlock", "--format", "json", "--dsn", dsn)
    assert code == ExitCode.SERVER
    assert err.count("\n") == 1 and err.startswith("txnlab: error: 4 of 8 runs could not run on this server;")
    cells = {(c["scenario"], c["level"]): c for c in json.loads(out)["verdicts"]}
    assert len(cells) == 8
    assert [c["matches_expectation"] for (name, _), c in cells.items() if name == "atm-lost-update"] == [True] * 4
    reasons = {c["could_not_run"] for (name, _), c in cells.items() if name == "deadlock"}
    (reason,) = reasons
    assert reason.endswith('deadlock.yaml:24: session transfer1 setup SQL failed: 42501 '
                           'permission denied to set parameter "deadlock_timeout"')


def test_run_and_report_show_every_cell_then_exit_3_when_one_could_not_run(role, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dsn = role("txnlab_no_deadlock_timeout", "CREATEDB NOSUPERUSER")
    code, out, err = _txnlab("run", "deadlock", "atm-lost-update", "--level", "rc", "--dsn", dsn)
    assert code == ExitCode.SERVER and err.count("\n") == 1
    assert "deadlock at READ COMMITTED" in out and "could not run on this server" in out
    assert "atm-lost-update at READ COMMITTED" in out and "read committed: as expected" in out
    page = tmp_path / "handout.html"
    code, out, err = _txnlab("report", "deadlock", "atm-lost-update", "--level", "rc", "-o", str(page), "--dsn", dsn)
    assert code == ExitCode.SERVER and err.count("\n") == 1 and page.exists()
    assert "could not run" in page.read_text()


# An explicit BEGIN in an autocommit session, left open when the run ends: psycopg2's
# rollback() sends nothing on an autocommit connection, so txnlab must send ROLLBACK itself.
LEFT_OPEN = """
name: left-open
title: a transaction left open
summary: Session a begins a transaction explicitly and never ends it.
sessions: {a: {autocommit: true}, b: {autocommit: true}}
steps:
  - {name: a_begin, session: a, sql: BEGIN}
  - {name: a_read, session: a, sql: SELECT 1 AS one}
  - {name: b_read, session: b, sql: SELECT 1 AS one}
  - {name: a_fail, session: a, sql: SELECT 1/0}
expect:
  all:
    errors: {a_fail: "22012"}
"""

LEVEL_SEEN = """
name: level-seen
title: the level a new transaction gets
summary: Each autocommit session begins a transaction and asks for its isolation level.
sessions: {a: {autocommit: true}, b: {autocommit: true}}
steps:
  - {name: a_begin, session: a, sql: BEGIN}
  - {name: a_level, session: a, sql: SHOW transaction_isolation}
  - {name: b_begin, session: b, sql: BEGIN}
  - {name: b_level, session: b, sql: SHOW transaction_isolation}
expect:
  all: {}
"""


@pytest.mark.parametrize("ends_in_error", [True, False], ids=["failed transaction", "open transaction"])
def test_a_transaction_a_run_leaves_open_in_an_autocommit_session_is_rolled_back_not_carried_into_the_next_run(
    lab: Lab, ends_in_error: bool
) -> None:
    text = LEFT_OPEN
    if not ends_in_error:
        text = text.replace("  - {name: a_fail, session: a, sql: SELECT 1/0}\n", "").replace(
            '    errors: {a_fail: "22012"}\n', "")
    first = lab.run(scenario_from_yaml(text), Level.READ_COMMITTED)
    assert first.events[-1].step == ("a_fail" if ends_in_error else "b_read")
    # The server ended nobody: txnlab's own reset of the session must not fail and say it did.
    assert [e.outcome for e in first.events].count(Outcome.ENDED) == 0
    seen = lab.run(scenario_from_yaml(LEVEL_SEEN), Level.SERIALIZABLE)
    for step in ("a_begin", "b_begin"):
        assert seen.final_event(step).notices == ()  # no "there is already a transaction in progress"
    for step in ("a_level", "b_level"):
        assert seen.final_event(step).rows == (("serializable",),)
