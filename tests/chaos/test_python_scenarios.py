"""Python scenario files that misbehave, run through the real `txnlab` command: whatever
their code does at import or in play(), the run ends with one line naming the file and
line, exit 2, stdout kept for txnlab's output, nothing left on the server, and a process
that exits promptly even when the scenario's thread cannot be stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2.extensions
import pytest

from conftest import leftovers
from txnlab.runner.contained import IMPORT_TIMEOUT_SECONDS

TXNLAB = str(Path(sys.executable).with_name("txnlab"))
STEP_TIMEOUT = 1.0

DOCUMENT = """\
SCENARIO = {"name": "misbehaving", "title": "t", "summary": "s", "sessions": {"a": {}, "b": {}},
            "setup": "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
            "steps": [{"name": "one", "session": "a", "sql": "SELECT 1 AS one"},
                      {"name": "lock", "session": "a", "sql": "UPDATE t SET id = 1"}],
            "expect": {"all": {}}}
"""


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    leftovers: tuple[list[str], list[str]]


@pytest.fixture
def txnlab(tmp_path: Path, server_dsn: str, admin: psycopg2.extensions.connection):  # type: ignore[no-untyped-def]
    """`txnlab(code, *args)`: write DOCUMENT + code as a scenario file, `txnlab run` it at
    read committed, and return what happened (the line numbers of `code` start at 6)."""
    env = {**os.environ, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1"}

    def run(code: str, *args: str) -> Ran:
        path = tmp_path / "misbehaving.py"
        path.write_text(DOCUMENT + textwrap.dedent(code))
        started = time.monotonic()
        process = subprocess.Popen(
            [TXNLAB, "run", str(path), "--level", "rc", "--step-timeout", str(STEP_TIMEOUT), *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )
        try:
            stdout, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
        seconds = time.monotonic() - started
        return Ran(process.returncode, stdout, stderr, seconds, leftovers(admin, process.pid))

    return run


def one_line(ran: Ran, tmp_path: Path, line: int | set[int], problem: str) -> None:
    """Exit 2, and stderr is exactly `txnlab: error: FILE:LINE: problem...` (a loop is on
    either of its lines when it is caught)."""
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr
    assert any(ran.stderr.startswith(f"txnlab: error: {tmp_path / 'misbehaving.py'}:{n}: {problem}")
               for n in ({line} if isinstance(line, int) else line)), ran.stderr
    assert ran.leftovers == ([], [])


def test_sys_exit_0_in_play_is_a_failed_run_not_a_silent_success(txnlab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ran = txnlab("""\
        import sys
        def play(run):
            run.step("one")
            sys.exit(0)
    """)
    one_line(ran, tmp_path, 9, "play() called sys.exit(0); a scenario ends by returning from play()")
    assert ran.stdout == ""


def test_an_endless_loop_at_import_ends_after_the_import_timeout(txnlab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ran = txnlab("""\
        while True:
            pass
        def play(run):
            pass
    """)
    one_line(ran, tmp_path, {6, 7}, f"importing it did not finish within {IMPORT_TIMEOUT_SECONDS:g} s")
    assert ran.seconds < IMPORT_TIMEOUT_SECONDS + 5


def test_an_endless_loop_in_play_ends_the_run_after_the_step_timeout(txnlab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ran = txnlab("""\
        def play(run):
            run.step("one")
            while True:
                pass
    """)
    one_line(ran, tmp_path, {8, 9}, f"play() asked for nothing for {STEP_TIMEOUT:g} s")
    assert ran.seconds < STEP_TIMEOUT + 5


def test_a_scenario_stuck_on_a_lock_outside_the_scheduler_still_ends_and_leaves_nothing(txnlab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ran = txnlab("""\
        def play(run):
            run.step("lock")  # session a holds the row lock, in its open transaction
            with run.connection("b").cursor() as cur:
                cur.execute("UPDATE t SET id = 1")  # waits for a, outside any step
    """)
    one_line(ran, tmp_path, 9, "play() asked for nothing")


def test_a_scenario_that_swallows_everything_in_a_loop_still_ends(txnlab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ran = txnlab("""\
        import time
        def play(run):
            while True:
                try:
                    time.sleep(2)
                    run.step("one")
                except BaseException:
                    pass
    """)
    one_line(ran, tmp_path, 10, "play() asked for nothing")


@pytest.mark.parametrize("raised", ["SystemExit(3)", "KeyboardInterrupt()", "GeneratorExit()", "Odd('odd')"])
def test_base_exceptions_raised_in_play_are_one_line_with_the_line_that_raised(
    txnlab, tmp_path: Path, raised: str
) -> None:  # type: ignore[no-untyped-def]
    ran = txnlab(f"""\
        class Odd(BaseException):
            pass
        def play(run):
            run.step("one")
            raise {raised}
    """)
    problem = "play() called sys.exit(3)" if raised.startswith("SystemExit") else f"play() raised {raised.split('(')[0]}"
    one_line(ran, tmp_path, 10, problem)


def test_a_base_exception_at_import_is_one_line_with_its_line(txnlab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ran = txnlab("""\
        import sys
        sys.exit("no")
    """)
    one_line(ran, tmp_path, 7, "importing it failed: SystemExit: no")


def test_what_a_scenario_prints_goes_to_stderr_and_json_stays_valid(txnlab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ran = txnlab("""\
        print("printed at import")
        def play(run):
            print("printed in play")
            run.call("a", "one", "a function on a's thread", lambda conn: print("printed in a session") or 1)
    """, "--format", "json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["runs"][0]["scenario"] == "misbehaving"
    assert ran.stderr.splitlines() == ["printed at import", "printed in play", "printed in a session"]


def test_a_mistake_in_a_request_is_raised_in_play_at_the_scenarios_line(txnlab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ran = txnlab("""\
        def play(run):
            run.step("one")
            run.step("no-such-step")
    """)
    one_line(ran, tmp_path, 8, "play() raised KeyError: 'no-such-step'")
