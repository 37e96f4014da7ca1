"""Workshop mode on a real terminal: keys pressed before a prompt is shown (while the server
starts, or a step runs) answer it, and the prompt's line still ends there, so the step's
result starts on a line of its own and no line outgrows the terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from txnlab.render.fit import display_width

COLUMNS = 80
KEY_TIMES = (0.2, 0.5, 1.0, 2.0)  # s after start: before the first prompt, or while steps run


def workshop_on_terminal(args: list[str], key: bytes, prompts: tuple[str, ...], server_dsn: str) -> str:
    """Run `txnlab run ARGS` on a pty COLUMNS wide; press `key` at KEY_TIMES, then whenever
    the output has rested on one of `prompts` for 0.3 s. Returns what the terminal showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, COLUMNS, 0, 0))
    env = {**os.environ, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-m", "txnlab", "run", *args], stdin=slave, stdout=slave,
                               stderr=slave, env=env, close_fds=True)
    os.close(slave)
    start = time.monotonic()
    shown, early, last_output = b"", list(KEY_TIMES), time.monotonic()
    try:
        while time.monotonic() - start < 120:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                shown, last_output = shown + chunk, time.monotonic()
            if early and time.monotonic() - start >= early[0]:
                early.pop(0)
                os.write(master, key)
            elif (not early and time.monotonic() - last_output > 0.3
                  and shown.decode(errors="replace").rstrip().endswith(prompts)):
                os.write(master, key)
                last_output = time.monotonic()
            if process.poll() is not None and not ready:
                break
        else:
            pytest.fail(f"txnlab run {' '.join(args)} did not finish:\n{shown.decode(errors='replace')}")
        assert process.wait(timeout=10) in (0, 1)
        return shown.decode(errors="replace").replace("\r\n", "\n")
    finally:
        process.kill() if process.poll() is None else None
        os.close(master)


def test_enter_pressed_before_the_prompt_appears_still_ends_the_prompt_line(server_dsn: str) -> None:
    shown = workshop_on_terminal(["atm-lost-update", "--level", "rc", "--step"], b"\r", ("Press Enter to run it",),
                                 server_dsn)
    prompts = [line for line in shown.splitlines() if "Press Enter to run it" in line]
    assert len(prompts) == 8
    assert set(prompts) == {"Press Enter to run it"}, shown


def test_predictions_typed_before_the_question_appears_end_its_line_within_80_columns(server_dsn: str) -> None:
    shown = workshop_on_terminal(["atm-lost-update", "--level", "rc", "--step", "--predict"], b"o\r",
                                 ("(o, b, f):", "(o, f):"), server_dsn)
    questions = [line for line in shown.splitlines() if "(o, b, f):" in line or "(o, f):" in line]
    assert len(questions) == 9  # a question per step, and one for the step released from its wait
    assert all(line.endswith("): o") for line in questions), shown
    assert max(display_width(line) for line in shown.splitlines()) <= COLUMNS, shown
