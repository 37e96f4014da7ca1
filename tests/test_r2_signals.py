"""A signal whose exception the interrupted code wraps in another, or swallows, still ends the
run as that signal: exit 128+n, one line, nothing left behind; never a traceback (exit 1),
never a verdict (0 or 1), never "interrupted, then: <error>" as if cleaning up had failed.

Python 3.11 turns what a class's `__set_name__` raises into RuntimeError (the signal's
exception becomes its __cause__). A dataclass field and a cached_property have one, so
any class defined while the CLI's modules load (about 1500 such calls) or while a command
runs can meet the signal there. Found with SIGINT sent at the K-th `__set_name__` call
of `txnlab list` (1 of 30 moments; under CPU load the CLI spends its first 1.5 s loading,
which is where tests/chaos/test_signals.py's trials mostly land). Each test below sends
the signal at that moment, deterministically, through Python's own mechanism.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psycopg2.extensions
import pytest

from conftest import leftovers
from txnlab import signals

TIMEOUT_SECONDS = 60

# SIGINT inside a dataclass field's __set_name__ while txnlab.scenario.model loads (the CLI's import).
DURING_CLASS_DEFINITION_AT_LOAD = """\
import dataclasses, os, signal, sys
from txnlab import signals
signals.install()
set_name = dataclasses.Field.__set_name__
def tripped(self, owner, name):
    if owner.__module__ == "txnlab.scenario.model":
        dataclasses.Field.__set_name__ = set_name
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10000):
            pass  # the handler runs here: Python wraps its exception in RuntimeError
    return set_name(self, owner, name)
dataclasses.Field.__set_name__ = tripped
sys.argv = ["txnlab", "list"]
from txnlab.__main__ import main
main()
"""

# txnlab, with the signal landing in a class definition (WRAPPED) or in code that swallows every
# exception (SWALLOWED) while it checks the first run's timeline, in the main thread.
DURING_THE_RUN = """\
import os, signal, sys
import txnlab.cli  # noqa: F401 - loads the modules in the CLI's order
from txnlab import workflow
report = workflow.report
def interrupt():
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(10000):
        pass  # the handler runs here
class Tripwire:
    def __set_name__(self, owner, name):
        interrupt()
def checked(*args, **kwargs):
    workflow.report = report  # once
    if os.environ["HOW"] == "WRAPPED":
        class Defined:  # Python raises RuntimeError, its __cause__ the signal's exception
            field = Tripwire()
    else:
        try:
            interrupt()
        except BaseException:
            pass  # as a library's bare `except:` would
    return report(*args, **kwargs)
workflow.report = checked
from txnlab.__main__ import main
sys.argv = ["txnlab", *sys.argv[1:]]
main()
"""

INTERRUPTED_LINE = f"txnlab: interrupted by {signals.describe(signal.SIGINT)}; nothing was left behind"


def test_a_signal_inside_a_class_definition_while_the_cli_loads_ends_it_with_130_and_one_line() -> None:
    """Before: RuntimeError's traceback, exit 1 (the chaos trials' 'exit code 1, expected 130')."""
    done = subprocess.run([sys.executable, "-c", DURING_CLASS_DEFINITION_AT_LOAD], capture_output=True, text=True,
                          timeout=TIMEOUT_SECONDS)
    assert (done.returncode, done.stderr) == (signals.exit_code(signal.SIGINT), INTERRUPTED_LINE + "\n")


@pytest.mark.parametrize("command", [("run", "atm-lost-update", "--level", "rc"),
                                     ("matrix", "--tag", "lost-update", "--format", "json")],
                         ids=["run", "matrix"])
@pytest.mark.parametrize("how", ["WRAPPED", "SWALLOWED"])
def test_a_signal_wrapped_or_swallowed_by_the_code_it_hit_mid_run_still_ends_it_as_the_signal(
    command: tuple[str, ...], how: str, server_dsn: str, admin: psycopg2.extensions.connection,
) -> None:
    """Before: WRAPPED said "interrupted ..., then: Error calling __set_name__ ..." (a cleanup
    failure that never happened); SWALLOWED went on to the end and exited 0 or 1, a verdict."""
    environment = {**os.environ, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1", "HOW": how}
    process = subprocess.Popen([sys.executable, "-c", DURING_THE_RUN, *command], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    assert (process.returncode, stderr) == (signals.exit_code(signal.SIGINT), INTERRUPTED_LINE + "\n")
    assert leftovers(admin, process.pid) == ([], [])


def test_interruption_finds_the_signal_in_the_chain_of_the_exception_that_wraps_it() -> None:
    signal_exception = signals.Interrupted(signal.SIGTERM)
    try:
        try:
            raise signal_exception
        except signals.Interrupted as exc:
            raise RuntimeError("Error calling __set_name__") from exc
    except RuntimeError as wrapper:
        assert signals.interruption(wrapper) is signal_exception
    assert signals.interruption(ValueError("a bug")) is None
    assert signals.interruption(None) is None


# SIGINT at the moment the scratch database's drop holds signals back, as the run ends normally:
# the profiler sends it as deferred_signals() is entered from ScratchDatabase.drop, and
# Python runs the handler at the next check, before the handlers are swapped.
AS_THE_DROP_BEGINS = """\
import os, signal, sys
def profile(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "deferred_signals":
        caller = frame.f_back
        while caller is not None and not (caller.f_code.co_name == "drop"
                                          and caller.f_code.co_filename.endswith("scratch.py")):
            caller = caller.f_back
        if caller is not None:
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGINT)
sys.setprofile(profile)
from txnlab.__main__ import main
sys.argv = ["txnlab", *sys.argv[1:]]
main()
"""


def test_a_signal_as_the_scratch_database_drop_begins_still_drops_it(
    server_dsn: str, admin: psycopg2.extensions.connection,
) -> None:
    """Before: the signal raised before the drop's section began, with the owner connection
    already handed over: the scratch database stayed (the chaos trials' leftover)."""
    environment = {**os.environ, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-c", AS_THE_DROP_BEGINS, "run", "atm-lost-update", "--level", "rc"],
                               env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    left = leftovers(admin, process.pid)
    for name in left[0]:  # a failure must not leave it for the next tests
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert (process.returncode, stderr, left) == (signals.exit_code(signal.SIGINT), INTERRUPTED_LINE + "\n", ([], []))
