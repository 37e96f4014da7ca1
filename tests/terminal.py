"""Real pseudo-terminals for tests of interactive commands: a pty as stdin (in-process),
and a whole `txnlab` process on a pty of a given size (what a presenter's terminal is)."""

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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def terminal_stdin(answers: str) -> Iterator[TextIO]:
    """A pseudo-terminal to use as sys.stdin, with `answers` already typed on it, then Ctrl-D:
    a prompt beyond the answers reads the end of input instead of waiting for ever."""
    master, slave = pty.openpty()
    os.write(master, answers.encode() + b"\x04")
    stream = os.fdopen(slave, "r")
    try:
        yield stream
    finally:
        stream.close()
        os.close(master)


def run_on_terminal(args: list[str], env: dict[str, str], *, columns: int, answer: dict[str, str],
                    timeout: float = 60) -> tuple[int, str]:
    """Run `python -m txnlab ARGS` on a pty `columns` wide; whenever the output ends with one of
    `answer`'s prompts, type its answer. Returns the exit code and everything shown (\\r\\n as \\n)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "txnlab", *args], stdin=slave, stdout=slave, stderr=slave,
                               env=env, close_fds=True)
    os.close(slave)
    shown, answered = b"", dict.fromkeys(answer, 0)  # prompt -> how many times it was answered
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            text = shown.decode(errors="replace")
            for prompt, reply in answer.items():
                if text.count(prompt) > answered[prompt] and text.rstrip().endswith(prompt.rstrip()):
                    answered[prompt] += 1
                    os.write(master, reply.encode())
            if process.poll() is not None and not ready:
                break
        else:
            process.kill()
            raise AssertionError(f"txnlab {' '.join(args)} did not finish in {timeout} s:\n{shown.decode()}")
        return process.wait(timeout=10), shown.decode(errors="replace").replace("\r\n", "\n")
    finally:
        os.close(master)
