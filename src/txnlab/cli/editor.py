"""Edit text in the user's editor, as `click.edit(text, require_save=True)` does, except that
a signal that ends txnlab while the editor is open ends the editor too: closed by the
same signal, else by SIGTERM, else killed, within a second. click's own version would
leave it running, orphaned, on a terminal that the shell takes back.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import click

from txnlab import signals

GRACE_SECONDS = 0.4  # per attempt: the same signal, then SIGTERM, then SIGKILL


def editor_command() -> list[str]:
    """$VISUAL, else $EDITOR, else the first of sensible-editor, vim, nano, else vi (click's order)."""
    for variable in ("VISUAL", "EDITOR"):
        if os.environ.get(variable):
            return shlex.split(os.environ[variable])
    return [next((e for e in ("sensible-editor", "vim", "nano") if shutil.which(e)), "vi")]


def edit(text: str, extension: str = ".yaml") -> str | None:
    """The edited text, or None when the editor quit without saving; ClickException when
    it cannot be started or fails. The temporary file is removed however this ends."""
    handle, name = tempfile.mkstemp(prefix="txnlab-", suffix=extension)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text if text.endswith("\n") else text + "\n")
        os.utime(name, (os.path.getatime(name), os.path.getmtime(name) - 2))  # a save changes it
        saved_before = os.path.getmtime(name)
        command = editor_command()
        try:
            editor = subprocess.Popen([*command, name])
        except OSError as exc:
            raise click.ClickException(f"{command[0]}: could not start the editor: {exc.strerror}") from None
        try:
            status = editor.wait()
        except BaseException as exc:  # the signal's Interrupted, maybe wrapped by the code it hit
            interrupted = signals.interruption(exc)
            _end(editor, signal.SIGTERM if interrupted is None else interrupted.signum)
            raise
        if status != 0:
            raise click.ClickException(f"{command[0]}: the editor failed (exit status {status})")
        if os.path.getmtime(name) == saved_before:
            return None
        return Path(name).read_text(encoding="utf-8")
    finally:
        os.unlink(name)


def _end(editor: subprocess.Popen[bytes], signum: int) -> None:
    """Pass the signal on to the editor; if it is still open after a moment, terminate it, then kill it.
    A signal the editor ignores (vim and nano ignore SIGINT, Ctrl-C being theirs) is not
    waited on: that wait alone took 0.4 s of the second txnlab has to end."""
    for sent in (signum, signal.SIGTERM, signal.SIGKILL):
        if editor.poll() is not None:
            return
        if _ignores(editor.pid, sent):
            continue
        editor.send_signal(sent)
        try:
            editor.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            continue


def _ignores(pid: int, signum: int) -> bool:
    """Whether process `pid` ignores `signum` (the SigIgn mask of /proc/PID/status, see proc(5));
    False where /proc cannot tell (not Linux, the process gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), "0")
    return bool(int(mask, 16) & (1 << (signum - 1)))
