"""A txnlab killed with SIGKILL during a capture run cannot remove its wire tap's directory;
the next run does, and never a live tap's directory or another OS user's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from txnlab.runner.wiretap import DIRECTORY_PREFIX, SOCKET_NAME, WireTap

SLEEPY_CAPTURE = textwrap.dedent("""\
    name: sleepy-capture
    title: A captured step that sleeps long enough to be killed
    summary: Used to leave a wire tap directory behind.
    capture: true
    sessions: {a: {}, b: {}}
    steps:
      - {name: nap, session: a, sql: SELECT pg_sleep(60)}
      - {name: other, session: b, sql: SELECT 1}
    expect: {all: {}}
    """)


def txnlab(args: list[str], tmp: Path, server_dsn: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp), "TXNLAB_DSN": server_dsn, "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "txnlab", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def tap_directories(tmp: Path) -> set[Path]:
    return {path for path in tmp.iterdir() if path.name.startswith(DIRECTORY_PREFIX)}


def killed_mid_capture(tmp: Path, server_dsn: str, scenario: Path) -> Path:
    """Start a capture run, SIGKILL it once its tap listens; return the directory it left."""
    process = txnlab(["run", str(scenario), "--level", "rc", "--step-timeout", "90"], tmp, server_dsn)
    deadline = time.monotonic() + 60
    while not any((path / SOCKET_NAME).exists() for path in tap_directories(tmp)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the capture run never opened its wire tap"
        time.sleep(0.05)
    time.sleep(0.5)  # the step is under way
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    (left,) = tap_directories(tmp)
    return left


def foreign_directory(tmp: Path) -> Path:
    """A tap-named directory with a dead socket that belongs to another OS user."""
    directory = tmp / f"{DIRECTORY_PREFIX}someone-else"
    directory.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(directory / SOCKET_NAME))
    dead.close()
    os.chown(directory, 65534, 65534)
    return directory


def test_the_next_run_removes_the_tap_directory_of_a_killed_run_and_keeps_live_and_foreign_ones(
    server_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = tmp_path / "sleepy-capture.yaml"
    scenario.write_text(SLEEPY_CAPTURE)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    left = killed_mid_capture(tmp, server_dsn, scenario)
    assert (left / SOCKET_NAME).exists()  # a killed process cleans nothing up
    foreign = foreign_directory(tmp) if os.geteuid() == 0 else None
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    live = WireTap(server_dsn)  # this process's tap, alive during the next run
    try:
        done = txnlab(["run", "atm-lost-update", "--level", "rc"], tmp, server_dsn)
        out, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
        assert not left.exists()
        assert Path(live.socket_dir).is_dir() and (Path(live.socket_dir) / SOCKET_NAME).exists()
        assert foreign is None or foreign.is_dir()
    finally:
        live.close()
    assert not Path(live.socket_dir).exists()
