"""Signals, round 3: a signal whose exception the code it hit swallowed still ends the run within
a second (not when the run would have ended), and a signal wrapped by the code it hit reaches
the editor as itself. Each test lands the signal at a chosen moment, through Python's own
signal mechanism, in a real `txnlab` (or txnlab code) run in a child process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2.extensions

from conftest import leftovers
from txnlab import signals
from txnlab.cli import editor

TIMEOUT_SECONDS = 60
EXIT_WITHIN_SECONDS = 1.0

STUCK = """\
SCENARIO = {"name": "stuck", "title": "t", "summary": "s", "sessions": {"a": {}, "b": {}},
            "steps": [{"name": "one", "session": "a", "sql": "SELECT 1"}], "expect": {"all": {}}}

def play(run):
    run.step("one")
    while True:  # a pure-Python loop: the run would wait for its step timeout (30 s)
        pass
"""

# txnlab, with a SIGHUP landing in main-thread code that swallows every exception (as a
# library's bare `except:` does) while the scheduler waits for step "one"; the moment the
# signal was sent goes to SENT_FILE.
SWALLOWED_MID_RUN = """\
import os, signal, sys, time
import txnlab.cli  # noqa: F401 - loads the modules in the CLI's order
from txnlab.runner import scheduler
drain = scheduler.Scheduler._drain
def swallowing(self, *args, **kwargs):
    scheduler.Scheduler._drain = drain  # once
    try:
        open(os.environ["SENT_FILE"], "w").write(repr(time.monotonic()))
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(10000):
            pass  # the handler runs here
    except BaseException:
        pass
    return drain(self, *args, **kwargs)
scheduler.Scheduler._drain = swallowing
from txnlab.__main__ import main
sys.argv = ["txnlab", *sys.argv[1:]]
main()
"""


def test_a_signal_swallowed_mid_run_still_ends_a_stuck_run_within_a_second(
    tmp_path: Path, server_dsn: str, admin: psycopg2.extensions.connection,
) -> None:
    """Before: every later signal was ignored and the run went on until its step timeout (30 s)."""
    scenario, sent_file = tmp_path / "stuck.py", tmp_path / "sent"
    scenario.write_text(STUCK)
    environment = {**os.environ, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1", "SENT_FILE": str(sent_file)}
    process = subprocess.Popen(
        [sys.executable, "-c", SWALLOWED_MID_RUN, "run", str(scenario), "--level", "rc", "--step-timeout", "30"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    exited = time.monotonic()
    assert process.returncode == signals.exit_code(signal.SIGHUP), stderr
    assert stderr == f"txnlab: interrupted by {signals.describe(signal.SIGHUP)}; nothing was left behind\n"
    assert exited - float(sent_file.read_text()) < EXIT_WITHIN_SECONDS + 0.3  # + the wait in communicate()
    assert leftovers(admin, process.pid) == ([], [])


# txnlab's editor, with a SIGHUP landing while it waits for the editor, inside a class definition:
# Python wraps the signal's exception in RuntimeError. The editor writes the signal it got to GOT_FILE.
WRAPPED_IN_THE_EDITOR = """\
import os, signal, subprocess, sys, time
from txnlab import signals
from txnlab.cli import editor
from txnlab.cli import editor
signals.install()
wait = subprocess.Popen.wait
class Tripwire:
    def __set_name__(self, owner, name):
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(10000):
            pass  # the handler runs here
def wrapping(self, timeout=None):
    subprocess.Popen.wait = wait  # once
    while not os.path.exists(os.environ["GOT_FILE"] + ".ready"):
        time.sleep(0.01)
    class Defined:
        field = Tripwire()
subprocess.Popen.wait = wrapping
try:
    editor.edit("text")
except RuntimeError as exc:
    assert signals.interruption(exc) is not None
    sys.exit(3)
"""

EDITOR = """\
import os, signal, sys, time
got = os.environ["GOT_FILE"]
def record(signum, frame):
    open(got, "w").write(str(signum))
    sys.exit(0)
for signum in (signal.SIGHUP, signal.SIGTERM):
    signal.signal(signum, record)
open(got + ".ready", "w").close()
time.sleep(30)
"""


def test_a_signal_wrapped_by_the_code_it_hit_reaches_the_editor_as_itself(tmp_path: Path) -> None:
    """Before: the editor was ended with SIGTERM, as for an error, rather than the SIGHUP received."""
    script, got_file = tmp_path / "editor.py", tmp_path / "got"
    script.write_text(EDITOR)
    environment = {**os.environ, "EDITOR": f"{sys.executable} {script}", "GOT_FILE": str(got_file),
                   "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", WRAPPED_IN_THE_EDITOR], env=environment, capture_output=True,
                          text=True, timeout=TIMEOUT_SECONDS)
    assert done.returncode == 3, done.stderr
    assert got_file.read_text() == str(int(signal.SIGHUP))


def test_the_editor_is_not_waited_on_for_a_signal_it_ignores() -> None:
    """Ctrl-C reaches vim as SIGINT, which it ignores: the 0.4 s wait for it to take effect was
    most of what the 1-second exit check measured under load (1.05 s seen)."""
    child = subprocess.Popen([sys.executable, "-c", IGNORING_SIGINT], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        assert editor._ignores(child.pid, signal.SIGINT)
        assert not editor._ignores(child.pid, signal.SIGTERM)
        started = time.monotonic()
        editor._end(child, signal.SIGINT)  # type: ignore[arg-type]
        assert child.returncode == -signal.SIGTERM
        assert time.monotonic() - started < editor.GRACE_SECONDS
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


IGNORING_SIGINT = """\
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(30)
"""
