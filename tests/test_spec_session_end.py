"""A session that the server ends during a spec (pg_terminate_backend, its own or another's)
is part of the spec, as in PostgreSQL's isolationtester: the step prints the server's FATAL
and libpq's own words about the closed connection, and the other sessions go on. A later
step sent to that session, its teardown and the next permutation's setup fail as
isolationtester's do; where isolationtester exits, txnlab ends with one line and exit 3.

The oracle is the real isolationtester, run on the same server in a scratch database of the
same kind (tests/isolation_tools.py); each test skips with a reason when it is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict
from conftest import leftovers
from isolation_tools import CORPUS, ISOLATIONTESTER, REGRESS_ENV, run_spec_text

from txnlab.runner.isolationtester import session_lost
from txnlab.runner.lab import Lab, open_lab
from txnlab.timeline import SESSION_LOST, Outcome

needs_isolationtester = pytest.mark.skipif(
    not ISOLATIONTESTER.is_file(), reason=f"the real isolationtester is not at {ISOLATIONTESTER}")

SELF_EXIT = """
    session s1
    step a { SELECT 1 AS a; }
    step exit { SELECT pg_terminate_backend(pg_backend_pid()); }
    session s2
    step b { SELECT 2 AS b; }
    permutation a exit b
"""
# s2 ends s1 while s1 is idle (and waits until it is gone): libpq still sends s1's next step, and reads
# the FATAL as its answer.
ENDED_BY_ANOTHER = """
    session s1
    step a { SELECT 1 AS a; }
    step b { SELECT 2 AS b; }
    session s2
    step kill { SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE datname = current_database()
                AND pid <> pg_backend_pid() AND (application_name = 'txnlab/s1' OR query = 'SELECT 1 AS a;'); }
    step sleep { SELECT pg_sleep(0.2); }
    permutation a kill sleep b
"""
NEXT_STEP = """
    session s1
    step a { SELECT 1 AS a; }
    step exit { SELECT pg_terminate_backend(pg_backend_pid()); }
    step c { SELECT 3 AS c; }
    session s2
    step b { SELECT 2 AS b; }
    permutation a exit b c
    permutation a b
"""
TEARDOWN_THEN_NEXT_PERMUTATION = """
    session s1
    step a { SELECT 1 AS a; }
    step exit { SELECT pg_terminate_backend(pg_backend_pid()); }
    teardown { SELECT 4 AS t; }
    session s2
    step b { SELECT 2 AS b; }
    permutation a exit b
    permutation a b
"""
SETUP_OF_THE_NEXT_PERMUTATION = """
    session s1
    setup { SELECT 0 AS z; }
    step a { SELECT 1 AS a; }
    step exit { SELECT pg_terminate_backend(pg_backend_pid()); }
    session s2
    step b { SELECT 2 AS b; }
    permutation a exit b
    permutation a b
"""

SETUP_ENDS_ITS_SESSION = """
    session s1
    setup { SELECT pg_terminate_backend(pg_backend_pid()); }
    step a { SELECT 1 AS a; }
    session s2
    step b { SELECT 2 AS b; }
"""
TEARDOWN_ENDS_ITS_SESSION = """
    session s1
    step a { SELECT 1 AS a; }
    teardown { SELECT pg_terminate_backend(pg_backend_pid()); }
    session s2
    step b { SELECT 2 AS b; }
    permutation a b
    permutation b a
"""


def isolationtester_run(dsn: str, text: str) -> subprocess.CompletedProcess[str]:
    """The real isolationtester on this spec (stderr with stdout, as pg_isolation_regress collects it)."""
    return subprocess.run(
        [str(ISOLATIONTESTER), dsn], input=text, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60, env={**os.environ, **REGRESS_ENV}, check=False,
    )


@needs_isolationtester
@pytest.mark.parametrize("text", [SELF_EXIT, ENDED_BY_ANOTHER], ids=["itself", "by-another-session"])
def test_a_session_the_server_ends_prints_its_fatal_and_the_spec_goes_on_as_in_isolationtester(
    spec_lab: Lab, text: str,
) -> None:
    if text is ENDED_BY_ANOTHER and not str(conninfo_to_dict(spec_lab.dsn).get("host", "/")).startswith("/"):
        pytest.skip("over TCP the step sent to the closed socket draws a reset, which may discard the FATAL "
                    "before libpq reads it: the output is not deterministic (this server is not on a unix socket)")
    real = isolationtester_run(spec_lab.dsn, text)
    assert real.returncode == 0
    output, _ = run_spec_text(spec_lab, text)
    assert output == real.stdout
    assert "FATAL:  terminating connection due to administrator command\nserver closed the connection unexpectedly\n" \
        in output


def test_the_timeline_says_the_server_ended_the_session_and_the_others_went_on(spec_lab: Lab) -> None:
    _, (timeline,) = run_spec_text(spec_lab, SELF_EXIT)
    outcomes = [(e.session, e.step, e.outcome) for e in timeline.events]
    assert outcomes == [("s1", "a", Outcome.OK), ("s1", "exit", Outcome.ERROR), ("s1", "exit", Outcome.ENDED),
                        ("s2", "b", Outcome.OK)]
    fatal, ended = timeline.events[1].error, timeline.events[2].error
    assert fatal is not None and (fatal.severity, fatal.sqlstate) == ("FATAL", "57P01")
    assert ended is not None and ended.message == "server closed the connection unexpectedly"
    assert timeline.events[2].transaction_status == "closed" and timeline.ended_early is None


@needs_isolationtester
@pytest.mark.parametrize("text", [NEXT_STEP, TEARDOWN_THEN_NEXT_PERMUTATION, SETUP_OF_THE_NEXT_PERMUTATION],
                         ids=["next-step", "teardown-then-next-permutation", "setup-of-next-permutation"])
def test_what_is_sent_later_to_the_ended_session_fails_as_in_isolationtester(spec_lab: Lab, text: str) -> None:
    """isolationtester prints "failed to send query for step c: no connection to the server",
    "teardown of session s1 failed: ..." (and goes on) or "setup of session s1 failed: ..."
    and exits 1; txnlab prints the same and stops there."""
    real = isolationtester_run(spec_lab.dsn, text)
    assert real.returncode == 1
    output, timelines = run_spec_text(spec_lab, text)
    assert output == real.stdout
    assert timelines[-1].ended_early == SESSION_LOST
    assert "session s1's connection was lost, so " in str(session_lost(timelines[-1]))


@needs_isolationtester
@pytest.mark.parametrize("text", [SETUP_ENDS_ITS_SESSION, TEARDOWN_ENDS_ITS_SESSION], ids=["setup", "teardown"])
def test_a_session_setup_or_teardown_that_ends_its_session_fails_as_in_isolationtester(spec_lab: Lab, text: str) -> None:
    """The block's failure shows PQerrorMessage, the FATAL and libpq's words after it; the
    failed setup, or the next permutation's step, ends the spec there, as isolationtester exits."""
    real = isolationtester_run(spec_lab.dsn, text)
    assert real.returncode == 1
    output, timelines = run_spec_text(spec_lab, text)
    assert output == real.stdout
    assert "failed: FATAL:  terminating connection due to administrator command\nserver closed" in output
    assert timelines[-1].ended_early == SESSION_LOST
    assert "session s1's connection was lost, so " in str(session_lost(timelines[-1]))


def test_a_step_sent_to_the_ended_session_ends_the_run_with_one_line_exit_3_and_nothing_left(
    tmp_path: Path, server_dsn: str, admin,  # type: ignore[no-untyped-def]
) -> None:
    spec = tmp_path / "next.spec"
    spec.write_text(NEXT_STEP)
    process = subprocess.Popen(
        [sys.executable, "-m", "txnlab", "run", str(spec), "--format", "isolationtester"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "TXNLAB_DSN": server_dsn},
    )
    try:
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 3
    assert out.endswith("failed to send query for step c: no connection to the server\n\n")
    assert err.endswith("txnlab: error: session s1's connection was lost, so step c could not be sent: "
                        "no connection to the server\n")
    assert err.count("txnlab:") == 1
    assert leftovers(admin, process.pid) == ([], [])


def test_text_and_json_say_the_server_ended_the_session_and_the_step_was_not_sent(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "next.spec"
    spec.write_text(NEXT_STEP)
    code, out, err = cli("run", str(spec), "--format", "json")
    assert code == 3 and err.count("\n") == 1
    events = json.loads(out)["runs"][0]["events"]
    assert [(e["step"], e["outcome"]) for e in events] == [
        ("a", "ok"), ("exit", "error"), ("exit", "ended"), ("b", "ok"), ("c", "skipped")]
    assert events[2]["error"]["message"] == "server closed the connection unexpectedly"
    assert events[4]["error"]["message"] == "no connection to the server"
    code, out, _ = cli("run", str(spec), "--format", "text")
    assert code == 3
    flat = " ".join(out.split())
    assert "the server ended the session" in flat and "not sent: no connection to the server" in flat


@needs_isolationtester
@pytest.mark.skipif(not (CORPUS / "specs" / "temp-schema-cleanup.spec").is_file(),
                    reason=f"PostgreSQL's isolation specs are not at {CORPUS}")
def test_temp_schema_cleanup_prints_what_the_real_isolationtester_18_prints(server_dsn: str) -> None:
    """The corpus spec whose last step terminates its own session; its expected output has a
    NOTICE PostgreSQL 19 adds, so on PostgreSQL 18 the real isolationtester 18 is the oracle."""
    text = (CORPUS / "specs" / "temp-schema-cleanup.spec").read_text()
    with open_lab(server_dsn, step_timeout=10) as lab:
        if not lab.server_version.startswith("18"):
            pytest.skip(f"the oracle is isolationtester 18 on PostgreSQL 18; this server is {lab.server_version}")
        real = isolationtester_run(lab.dsn, text)
    with open_lab(server_dsn, step_timeout=10) as lab:
        output, _ = run_spec_text(lab, text)
    assert real.returncode == 0
    assert output == real.stdout


def test_a_spec_stopped_by_a_lost_session_says_session_lost_not_timed_out(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The matrix and the JSON verdict say what stopped the run: a step sent to a session the
    server had closed ("session lost"), never "timed out", which would blame the step timeout."""
    spec = tmp_path / "gone.spec"
    spec.write_text("session s1\nstep kill { SELECT pg_terminate_backend(pg_backend_pid()); }\nstep c { SELECT 1; }\n"
                    "permutation kill c\n")
    code, out, err = cli("run", str(spec), "--format", "json")
    assert code == 3 and err.count("\n") == 1
    verdict = json.loads(out)["runs"][0]["verdict"]
    assert verdict["ended_early"] == "session lost" and verdict["outcome"] == "session lost"
    code, out, _ = cli("matrix", str(spec))
    assert "session lost" in out and "timed out" not in out
