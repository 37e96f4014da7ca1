"""A `.spec` runs as PostgreSQL's isolationtester runs it, and prints what it prints, byte for byte.

Two oracles: the corpus's expected outputs (../shared/pg-isolation-specs, written by
PostgreSQL's developers), and the real isolationtester binary run on the same server, in the
same kind of scratch database, on a small spec written here for each fact. Each test skips
with a reason when its oracle is absent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import leftovers
from isolation_tools import CORPUS, ISOLATIONTESTER, REGRESS_ENV, expected_outputs, isolationtester_output, run_spec_text

from txnlab.errors import ScenarioError, ServerError
from txnlab.levels import Level
from txnlab.render.isolationtester import render_isolationtester
from txnlab.runner.isolationtester import run_spec_file
from txnlab.runner.lab import Lab, open_lab
from txnlab.scenario.spec_source import load_spec, parse_spec
from txnlab.timeline import Outcome


needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"PostgreSQL's isolation specs are not at {CORPUS}")
needs_isolationtester = pytest.mark.skipif(
    not ISOLATIONTESTER.is_file(), reason=f"the real isolationtester is not at {ISOLATIONTESTER}")


@needs_corpus
@pytest.mark.parametrize("name", ["simple-write-skew", "deadlock-simple", "async-notify", "insert-conflict-do-nothing",
                                  "eval-plan-qual-trigger", "deadlock-soft", "fk-snapshot-3"])
def test_a_corpus_spec_prints_byte_for_byte_its_expected_output(spec_lab: Lab, name: str) -> None:
    if not spec_lab.server_version.startswith("18."):
        pytest.skip(f"the expected outputs are PostgreSQL 18's; this server is {spec_lab.server_version}")
    scenario = load_spec(CORPUS / "specs" / f"{name}.spec")
    output = render_isolationtester(scenario, spec_lab.run_permutations(scenario, Level.READ_COMMITTED))
    assert output in expected_outputs(name)


ORACLE_SPECS = {
    "every result set of a multi-statement step, and empty steps": """
        setup { CREATE TABLE t (i int, n numeric(5,2), d date); INSERT INTO t VALUES (1, 1.00, '2008-12-22'); }
        teardown { DROP TABLE t; }
        session s1
        step both { SELECT i FROM t; SELECT n, d FROM t; UPDATE t SET i = 2; SELECT NULL AS nothing, '' AS e; }
        step empty { }
        step comment { -- nothing but a comment
        }
        session s2
        step wide { SELECT 'ünïcode' AS word, 12345 AS num, -1.5e3 AS sci, 'e5' AS texty, 'x' AS "numeric header" }
    """,
    "setup, session setup and teardown output, and a failing teardown": """
        setup { CREATE TABLE t (i int); }
        setup { SELECT 'second setup' AS what; }
        teardown { SELECT count(*) FROM t; DROP TABLE t; }
        session s1
        setup { SELECT 1 AS s1_setup; }
        step a { INSERT INTO t VALUES (1); }
        teardown { SELECT 'bye' AS s1_teardown; SELECT 1/0; }
        session s2
        step b { SELECT * FROM t; }
        teardown { SELECT 'bye' AS s2_teardown; }
    """,
    "notices before a wait, while waiting and at completion, and the (step notices N) marker": """
        setup { CREATE TABLE t (i int); INSERT INTO t VALUES (1);
          CREATE FUNCTION say(text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE '%', $1; RETURN 1; END $$; }
        teardown { DROP TABLE t; DROP FUNCTION say(text); }
        session s1
        setup { BEGIN; }
        step lock { SELECT say('locking'); LOCK t; }
        step c1 { COMMIT; }
        session s2
        step waits { SELECT say('before'); LOCK t; SELECT say('after'); }
        permutation lock waits c1
        permutation lock waits(c1) c1
    """,
    "a notice read while its step still waits": """
        setup { CREATE TABLE a (i int); CREATE TABLE b (i int);
          CREATE FUNCTION lock_both() RETURNS int LANGUAGE plpgsql AS $$
          BEGIN LOCK a; RAISE NOTICE 'got a'; LOCK b; RETURN 1; END $$; }
        teardown { DROP TABLE a, b; DROP FUNCTION lock_both(); }
        session s1
        setup { BEGIN; }
        step locka { LOCK a; }
        step c1 { COMMIT; }
        session s2
        setup { BEGIN; }
        step lockb { LOCK b; }
        step c2 { COMMIT; }
        session s3
        step both { SELECT lock_both(); }
        permutation locka lockb both c1 c2
    """,
    "the (step notices N) marker": """
        setup { CREATE TABLE t (i int);
          CREATE FUNCTION lock_t() RETURNS int LANGUAGE plpgsql AS $$
          BEGIN RAISE NOTICE 'started'; LOCK t; RAISE NOTICE 'done'; RETURN 1; END $$; }
        teardown { DROP TABLE t; DROP FUNCTION lock_t(); }
        session s1
        step n1 { SELECT lock_t(); }
        session s2
        step quick { SELECT 2 AS quick; }
        session s3
        setup { BEGIN; }
        step l3 { LOCK t; }
        step c3 { COMMIT; }
        permutation l3 n1 quick(n1 notices 1) c3
    """,
    "a failing setup ends the spec": """
        setup { SELECT 'first' AS setup; }
        setup { SELECT 1/0; }
        session s1
        step a { SELECT 1; }
        permutation a
        permutation a a
    """,
    "a failing session setup ends the spec": """
        session s1
        setup { SELECT 'ok' AS fine; }
        step a { SELECT 1; }
        session s2
        setup { SELECT * FROM no_such_table; }
        step b { SELECT 2; }
    """,
    "a failing teardown goes on": """
        teardown { DROP TABLE no_such_table; }
        session s1
        step a { SELECT 1 AS one; }
        teardown { SELECT 1/0; }
        permutation a
        permutation a a
    """,
    "unused steps": """
        session s1
        step b { SELECT 1; }
        step a { SELECT 2; }
        step Z { SELECT 3; }
        permutation b
    """,
    "LISTEN/NOTIFY lines, from a session and from elsewhere": """
        session l
        step listen { LISTEN ch; }
        step check { SELECT 1 AS one; }
        step unlisten { UNLISTEN *; }
        session n
        step notify { NOTIFY ch, 'payload'; }
        step both { SELECT pg_notify('ch', 'one'); NOTIFY ch; }
        permutation listen notify check both check unlisten
    """,
    "SET ROLE sees permission denied, EXPLAIN VERBOSE names public": """
        setup { CREATE ROLE txnlab_spec_r NOLOGIN; GRANT txnlab_spec_r TO CURRENT_USER; CREATE TABLE t (i int); }
        teardown { DROP TABLE t; DROP ROLE txnlab_spec_r; }
        session s1
        step role { SET ROLE txnlab_spec_r; }
        step read { SELECT * FROM t; }
        step reset { RESET ROLE; }
        step explain { EXPLAIN (VERBOSE, COSTS OFF) SELECT i FROM t; }
        permutation role read reset explain
    """,
    "generated permutations": """
        setup { CREATE TABLE t (i int PRIMARY KEY); }
        teardown { DROP TABLE t; }
        session s1
        setup { BEGIN; }
        step ins1 { INSERT INTO t VALUES (1); }
        step c1 { COMMIT; }
        session s2
        step ins2 { INSERT INTO t VALUES (2); }
        step sel2 { SELECT * FROM t ORDER BY i; }
    """,
    "markers on a permutation line": """
        setup { CREATE TABLE t (i int PRIMARY KEY); }
        teardown { DROP TABLE t; }
        session s1
        setup { BEGIN; }
        step ins1 { INSERT INTO t VALUES (1); }
        step c1 { COMMIT; }
        session s2
        step ins2 { INSERT INTO t VALUES (1); }
        step sel2 { SELECT 1 AS fast; }
        permutation ins1 sel2(*) c1
        permutation ins1 ins2(c1) c1
    """,
}


@needs_isolationtester
@pytest.mark.parametrize("name", list(ORACLE_SPECS))
def test_a_spec_prints_what_the_real_isolationtester_prints(spec_lab: Lab, name: str) -> None:
    text = ORACLE_SPECS[name]
    expected = isolationtester_output(spec_lab, text)
    assert "Parsed test spec" in expected, expected
    output, _ = run_spec_text(spec_lab, text)
    assert output == expected


def test_notices_are_recorded_where_isolationtester_prints_them(spec_lab: Lab) -> None:
    _, timelines = run_spec_text(spec_lab, ORACLE_SPECS[
        "notices before a wait, while waiting and at completion, and the (step notices N) marker"])
    events = timelines[0].events
    waiting = next(e for e in events if e.step == "waits" and e.outcome is Outcome.BLOCKED)
    assert waiting.notices == ("NOTICE:  before",)  # read before the wait was reported
    assert waiting.blocked_by == ("s1",)
    assert waiting.lock is not None and waiting.lock.relation == "t"
    completed = next(e for e in events if e.step == "waits" and e.after_wait)
    assert [r.notices for r in completed.results] == [(), (), ("NOTICE:  after",)]  # between result sets
    assert [r.status for r in completed.results] == ["SELECT 1", "LOCK TABLE", "SELECT 1"]


def test_a_notice_read_while_its_step_still_waits_is_an_event_of_its_own(spec_lab: Lab) -> None:
    _, timelines = run_spec_text(spec_lab, ORACLE_SPECS["a notice read while its step still waits"])
    kinds = [(e.step, e.outcome, e.notices) for e in timelines[0].events if e.step == "both"]
    assert kinds == [("both", Outcome.BLOCKED, ()), ("both", Outcome.NOTICE, ("NOTICE:  got a",)),
                     ("both", Outcome.OK, ())]


STEP_TIMEOUT_SPEC = """
    session s1
    step sleep { SELECT pg_sleep(30); }
    step after { SELECT 'after' AS what; }
"""


@needs_isolationtester
def test_a_step_over_the_timeout_is_cancelled_as_isolationtester_cancels_it(server_dsn: str) -> None:
    """isolationtester cancels after max_step_wait (twice PG_TEST_TIMEOUT_DEFAULT); txnlab after
    its step timeout: the same lines, then the permutation goes on."""
    with open_lab(server_dsn, step_timeout=2) as lab:
        started = time.monotonic()
        output, timelines = run_spec_text(lab, STEP_TIMEOUT_SPEC)
        took = time.monotonic() - started
        done = subprocess.run(
            [str(ISOLATIONTESTER), lab.dsn], input=STEP_TIMEOUT_SPEC, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=60, env={**os.environ, **REGRESS_ENV, "PG_TEST_TIMEOUT_DEFAULT": "1"}, check=False,
        )
    assert "isolationtester: canceling step sleep after 2 seconds" in output
    assert output == done.stdout
    assert [e.outcome for e in timelines[0].events] == [Outcome.TIMEOUT, Outcome.ERROR, Outcome.OK]
    assert took < 5


@needs_isolationtester
def test_a_step_of_a_session_still_waiting_is_cancelled_after_the_timeout_as_isolationtester_does(
    server_dsn: str,
) -> None:
    """An invalid permutation (the next step's session still waits): isolationtester waits for
    the earlier step, cancels it after max_step_wait and goes on; txnlab after its step timeout."""
    spec = """
        setup { CREATE TABLE t (i int PRIMARY KEY); }
        teardown { DROP TABLE t; }
        session s1
        setup { BEGIN; }
        step ins1 { INSERT INTO t VALUES (1); }
        step c1 { COMMIT; }
        session s2
        step ins2 { INSERT INTO t VALUES (1); }
        step sel2 { SELECT 1 AS one; }
        permutation ins1 ins2 sel2 c1
    """
    with open_lab(server_dsn, step_timeout=2) as lab:
        output, _ = run_spec_text(lab, spec)
        done = subprocess.run(
            [str(ISOLATIONTESTER), lab.dsn], input=spec, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=60, env={**os.environ, **REGRESS_ENV, "PG_TEST_TIMEOUT_DEFAULT": "1"}, check=False,
        )
        assert "isolationtester: canceling step ins2 after 2 seconds" in output
        assert output == done.stdout
        assert wait_until_gone(lab) == []


def test_a_later_statement_that_waits_is_cancelled_where_isolationtester_would_hang(spec_lab: Lab) -> None:
    """isolationtester reports a multi-statement step complete once its first result is ready,
    then blocks in PQgetResult forever if a later statement waits; txnlab cancels it after the
    step timeout and goes on."""
    spec = """
        setup { CREATE TABLE b (i int); }
        teardown { DROP TABLE b; }
        session s2
        setup { BEGIN; }
        step lockb { LOCK b; }
        step c2 { COMMIT; }
        session s3
        step both { SELECT 1 AS first; DO $$ BEGIN RAISE NOTICE 'flushes the first result'; END $$; LOCK b; }
        permutation lockb both c2
    """
    spec_lab.step_timeout = 0.5
    started = time.monotonic()
    output, timelines = run_spec_text(spec_lab, spec)
    assert time.monotonic() - started < 3
    assert "<waiting ...>" not in output  # reported complete at once, as isolationtester reports it
    assert output.endswith("(1 row)\n\nERROR:  canceling statement due to user request\nstep c2: COMMIT;\n")
    assert [(e.step, e.outcome) for e in timelines[0].events][-3:] == [
        ("both", Outcome.TIMEOUT), ("both", Outcome.ERROR), ("c2", Outcome.OK)]


def wait_until_gone(lab: Lab) -> list[str]:
    """The lab database's libpq sessions (txnlab/NAME) still there after up to 2 s."""
    deadline = time.monotonic() + 2
    while True:
        with lab.admin.cursor() as cur:
            cur.execute("SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name LIKE 'txnlab/%'")
            left = [r[0] for r in cur.fetchall()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def test_a_spec_run_leaves_no_session_behind(spec_lab: Lab) -> None:
    run_spec_text(spec_lab, ORACLE_SPECS["generated permutations"])
    assert wait_until_gone(spec_lab) == []


@needs_corpus
def test_run_format_isolationtester_prints_a_corpus_spec_byte_for_byte(cli, spec_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    if not spec_lab.server_version.startswith("18."):
        pytest.skip(f"the expected outputs are PostgreSQL 18's; this server is {spec_lab.server_version}")
    code, out, err = cli("run", str(CORPUS / "specs" / "deadlock-simple.spec"), "--format", "isolationtester")
    assert (code, err) == (0, "")
    assert out in expected_outputs("deadlock-simple")


def test_run_format_isolationtester_of_a_spec_whose_setup_fails_prints_it_and_exits_2(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path,
) -> None:
    spec = tmp_path / "broken.spec"
    spec.write_text(ORACLE_SPECS["a failing setup ends the spec"])
    code, out, err = cli("run", str(spec), "--format", "isolationtester")
    assert out.endswith("starting permutation: a\nsetup\n-----\nfirst\n(1 row)\n\nsetup failed: ERROR:  division by zero\n")
    assert code == 2
    assert err == f"txnlab: error: {spec}:3: setup failed: 22012 division by zero\n"


def test_run_format_isolationtester_refuses_a_yaml_scenario_in_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    """isolationtester parses only .spec files, and its output names no level: for a YAML
    scenario it would claim a parse that never happened and hide the levels run."""
    code, out, err = cli("run", "atm-lost-update", "--level", "rc", "--format", "isolationtester")
    assert (code, out) == (2, "")
    assert err == ("txnlab: error: --format isolationtester prints what isolationtester prints for a .spec; "
                   "atm-lost-update is not a .spec\n")


def test_set_role_sees_permission_denied_and_explain_verbose_names_public(spec_lab: Lab) -> None:
    """Objects live in the database's public schema, as in a fresh database: a role without
    privileges gets 42501 (not 42P01, relation does not exist), EXPLAIN VERBOSE says public.t."""
    output, timelines = run_spec_text(spec_lab, ORACLE_SPECS["SET ROLE sees permission denied, EXPLAIN VERBOSE names public"])
    read = timelines[0].final_event("read")
    assert read is not None and read.error is not None
    assert (read.error.sqlstate, read.error.severity) == ("42501", "ERROR")
    assert "ERROR:  permission denied for table t\n" in output
    assert "Seq Scan on public.t\n  Output: i         \n" in output


def test_values_are_the_servers_text_in_pg_regress_settings(spec_lab: Lab) -> None:
    """numeric(5,2) keeps 1.00; a date follows DateStyle 'Postgres, MDY', as pg_regress sets it."""
    _, timelines = run_spec_text(spec_lab, ORACLE_SPECS["every result set of a multi-statement step, and empty steps"])
    both = timelines[0].final_event("both")
    assert both is not None
    assert [r.status for r in both.results] == ["SELECT 1", "SELECT 1", "UPDATE 1", "SELECT 1"]
    assert both.results[1].rows == (("1.00", "12-22-2008"),)
    assert both.results[3].rows == ((None, ""),)


@needs_isolationtester
def test_every_session_has_the_settings_pg_regress_gives_the_real_isolationtester(spec_lab: Lab) -> None:
    """The settings pg_regress puts in isolationtester's environment are the real tool's:
    TimeZone America/Los_Angeles (PostgreSQL 15's and 18's pg_regress; older ones said PST8PDT)
    and DateStyle 'Postgres, MDY'. Those pg_regress sets on its database (lc_monetary,
    lc_numeric, lc_time 'C') every session of a spec has too."""
    spec = ("session s\nstep show { SELECT name, setting FROM pg_settings WHERE name IN "
            "('TimeZone', 'DateStyle', 'IntervalStyle', 'extra_float_digits', 'bytea_output') ORDER BY name; }\n")
    output, _ = run_spec_text(spec_lab, spec)
    assert output == isolationtester_output(spec_lab, spec)
    assert "TimeZone          |America/Los_Angeles" in output
    database_level = ("session s\nstep show { SELECT current_setting('lc_monetary'), current_setting('lc_numeric'), "
                      "current_setting('lc_time'), current_setting('timezone_abbreviations'); }\n")
    _, timelines = run_spec_text(spec_lab, database_level)
    shown = timelines[0].final_event("show")
    assert shown is not None and shown.rows == (("C", "C", "C", "Default"),)


def test_ctrl_c_during_a_spec_step_exits_130_and_leaves_nothing_behind(  # type: ignore[no-untyped-def]
    tmp_path: Path, server_dsn: str, admin,
) -> None:
    spec = tmp_path / "sleepy.spec"
    spec.write_text("setup { CREATE TABLE t (i int); }\nteardown { DROP TABLE t; }\n"
                    "session s1\nsetup { BEGIN; LOCK t; }\nstep sleep { SELECT pg_sleep(60); }\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "txnlab", "run", str(spec), "--format", "isolationtester", "--step-timeout", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TXNLAB_DSN": server_dsn},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with admin.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'txnlab/s1' "
                            "AND query LIKE 'SELECT pg_sleep%%' AND pid <> pg_backend_pid()")
                if cur.fetchone()[0]:
                    break
            time.sleep(0.05)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 130
    assert time.monotonic() - sent < 2
    assert err.count("\n") == 1 and err.startswith("txnlab: interrupted by SIGINT")
    assert leftovers(admin, process.pid) == ([], [])


def test_a_step_sent_to_a_session_whose_connection_was_lost_ends_the_spec_with_one_line_and_exit_3(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path,
) -> None:
    """b answers the FATAL, as in isolationtester (tests/test_spec_session_end.py); the second a
    cannot be sent: isolationtester exits there, txnlab with one line and exit 3."""
    spec = tmp_path / "kill.spec"
    spec.write_text("""
        session s1
        step a { SELECT 1 AS a; }
        step b { SELECT 2 AS b; }
        session s2
        step kill { SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE application_name = 'txnlab/s1'
                    AND datname = current_database(); }
        step sleep { SELECT pg_sleep(0.2); }
        permutation a kill sleep b a
    """)
    code, out, err = cli("run", str(spec), "--format", "isolationtester")
    assert code == 3
    assert err.startswith("txnlab: error: session s1's connection was lost, so step a could not be sent")
    assert err.count("\n") == 1


def test_a_setup_or_teardown_block_that_waits_too_long_is_cancelled_and_fails(server_dsn: str) -> None:
    """isolationtester would wait forever for a lock a session still holds from the previous
    permutation; txnlab cancels the block after the step timeout: a failing teardown goes on,
    a failing setup ends the spec."""
    spec = """
        setup { CREATE TABLE IF NOT EXISTS t (i int); }
        setup { SELECT count(*) AS n FROM t; }
        teardown { DROP TABLE t; }
        session s1
        step lk { BEGIN; LOCK t; }
        permutation lk
        permutation lk
    """
    with open_lab(server_dsn, step_timeout=0.5) as lab:
        started = time.monotonic()
        output, timelines = run_spec_text(lab, spec)
        assert time.monotonic() - started < 3
        assert wait_until_gone(lab) == []
    assert output.endswith(
        "step lk: BEGIN; LOCK t;\nteardown failed: ERROR:  canceling statement due to user request\n\n"
        "starting permutation: lk\nsetup failed: ERROR:  canceling statement due to user request\n")
    assert [t.ended_early for t in timelines] == [None, "setup failed"]


@needs_corpus
def test_run_spec_file_returns_the_text_and_the_timelines_with_or_without_wait_details(spec_lab: Lab) -> None:
    path = CORPUS / "specs" / "deadlock-simple.spec"
    text, timelines = run_spec_file(path, spec_lab)
    plain_text, plain = run_spec_file(path, spec_lab, wait_details=False)
    assert text == plain_text
    assert text.startswith("Parsed test spec with 2 sessions\n")
    waits = [e for e in timelines[0].events if e.outcome is Outcome.BLOCKED]
    assert [(e.step, e.blocked_by) for e in waits] == [("s1ae", ("s2",))]
    assert all(e.blocked_by == () and e.lock is None for e in plain[0].events)


def test_setup_and_teardown_blocks_are_events_in_the_order_isolationtester_runs_them(spec_lab: Lab) -> None:
    _, timelines = run_spec_text(spec_lab, ORACLE_SPECS["setup, session setup and teardown output, and a failing teardown"])
    timeline = timelines[0]
    assert [(e.seq, e.session, e.step, e.outcome) for e in timeline.setup] == [
        (1, "", "setup.0", Outcome.OK), (2, "", "setup.1", Outcome.OK), (3, "s1", "session.s1.setup.0", Outcome.OK)]
    assert timeline.setup[1].rows == (("second setup",),)
    assert [(e.seq, e.session, e.step, e.outcome) for e in timeline.teardown] == [
        (1, "s1", "session.s1.teardown.0", Outcome.ERROR), (2, "s2", "session.s2.teardown.0", Outcome.OK),
        (3, "", "teardown.0", Outcome.OK)]
    assert timeline.teardown[0].error is not None and timeline.teardown[0].error.sqlstate == "22012"
    assert (timeline.teardown[2].status, timeline.teardown[2].rows) == ("DROP TABLE", None)  # PQexec: the last result


def test_a_setup_failing_for_lack_of_a_privilege_exits_3(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """42501 is the server's side (README, exit codes): exit 3, one line, after the output."""
    spec = tmp_path / "privilege.spec"
    spec.write_text("setup { SELECT 1 AS first; }\nsetup { SET ROLE pg_read_all_data; CREATE TABLE t (i int); }\n"
                    "session s1\nstep a { SELECT 1; }\n")
    code, out, err = cli("run", str(spec), "--format", "isolationtester")
    assert "\nsetup failed: ERROR:  permission denied " in out
    assert code == 3
    assert err.startswith(f"txnlab: error: {spec}:2: setup failed: 42501 permission denied ") and err.count("\n") == 1


def test_format_isolationtester_refuses_repeat(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", "atm-lost-update", "--format", "isolationtester", "--repeat", "2")
    assert (code, out) == (2, "")
    assert err == "txnlab: error: --format isolationtester prints one run of every permutation; it cannot --repeat\n"


def test_run_permutations_runs_a_yaml_scenario_once_per_permutation_in_order(lab: Lab, catalogue) -> None:  # type: ignore[no-untyped-def]
    scenario = catalogue.resolve("atm-lost-update")
    first = scenario.default_permutation
    second = tuple(sorted(first, key=lambda name: scenario.steps[name].session != scenario.sessions[1].name))
    timelines = lab.run_permutations(scenario, Level.READ_COMMITTED, [first, second])
    assert [t.permutation for t in timelines] == [first, second]
    assert len(lab.run_permutations(scenario, Level.READ_COMMITTED)) == len(scenario.permutations)


def test_run_permutations_runs_the_given_spec_permutations_with_their_markers(spec_lab: Lab) -> None:
    scenario = parse_spec(ORACLE_SPECS["markers on a permutation line"], "inline.spec")
    timelines = spec_lab.run_permutations(scenario, Level.READ_COMMITTED, [("ins1", "sel2", "c1")])
    assert [t.permutation for t in timelines] == [("ins1", "sel2", "c1")]
    assert [(e.step, e.outcome) for e in timelines[0].events] == [
        ("ins1", Outcome.OK), ("sel2", Outcome.BLOCKED), ("c1", Outcome.OK), ("sel2", Outcome.OK)]  # sel2(*)


def test_a_given_permutation_naming_no_step_of_the_spec_is_one_line(spec_lab: Lab) -> None:
    scenario = parse_spec(ORACLE_SPECS["markers on a permutation line"], "inline.spec")
    with pytest.raises(ScenarioError) as raised:
        spec_lab.run_permutations(scenario, Level.READ_COMMITTED, [("ins1", "nosuch")])
    assert str(raised.value) == "inline.spec: no step named 'nosuch' (permutation ins1 nosuch)"


def test_a_spec_run_whose_control_connection_dies_ends_with_one_server_error(spec_lab: Lab) -> None:
    """The lock-wait check's connection is terminated mid-run: exit 3's ServerError, one line."""
    spec = """
        setup { CREATE TABLE t (i int); }
        teardown { DROP TABLE t; }
        session s1
        setup { BEGIN; }
        step lk { LOCK t; }
        step kill { SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE '%control%'; }
        step c1 { COMMIT; }
        session s2
        step wait { LOCK t; }
        permutation lk kill wait c1
    """
    with pytest.raises(ServerError) as raised:
        run_spec_text(spec_lab, spec)
    assert "\n" not in str(raised.value)
    assert wait_until_gone(spec_lab) == []


def test_a_spec_deadlock_error_knows_which_session_each_process_it_names_is(spec_lab: Lab) -> None:
    """The deadlock DETAIL names backends by pid; the error records who they are, as a YAML run's does,
    so every view can say "session s1" instead of a number nobody saw."""
    spec = ("setup { CREATE TABLE a (i int); CREATE TABLE b (i int); }\nteardown { DROP TABLE a, b; }\n"
            "session s1\nsetup { BEGIN; SET deadlock_timeout = '10ms'; }\nstep s1a { LOCK a; }\nstep s1b { LOCK b; }\n"
            "step s1c { COMMIT; }\n"
            "session s2\nsetup { BEGIN; SET deadlock_timeout = '10s'; }\nstep s2b { LOCK b; }\nstep s2a { LOCK a; }\n"
            "step s2c { COMMIT; }\npermutation s1a s2b s2a s1b s1c s2c\n")
    _, timelines = run_spec_text(spec_lab, spec)
    victim = timelines[0].final_event("s1b")
    assert victim is not None and victim.error is not None and victim.error.sqlstate == "40P01"
    assert sorted(who for _, who in victim.error.backends) == ["session s1", "session s2"]
