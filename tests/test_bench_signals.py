"""A signal during a bench, sent to the whole process group as a terminal sends it, while
txnlab's clients or pgbench are running: the process exits 128+n without a traceback, and no
child process, session or scratch database is left. The bench runs as the CLI runs it:
signals.install() first, the signal's Interrupted turned into the exit code. pgbench's
temporary files go too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest

from conftest import leftovers

TESTS = Path(__file__).resolve().parent
DRIVER = """\
import sys
from txnlab import signals
signals.install()
from bench_workloads import bank_transfer
from txnlab.bench.model import BenchPlan
from txnlab.bench.run import run_bench
from txnlab.levels import Level
try:
    run_bench(sys.argv[1], BenchPlan(bank_transfer(), (Level.READ_COMMITTED,), (4,), duration_s=3.0,
                                     pgbench=sys.argv[2] == "pgbench"))
except BaseException as exc:
    interrupted = signals.interruption(exc)
    if interrupted is None:
        raise
    signals.ignore_further()
    sys.exit(signals.exit_code(interrupted.signum))
"""
WAIT_SECONDS = 15.0


def _group_members(pgid: int) -> list[str]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(stat.split(")", 1)[0] + ")")
    return members


def _sessions(admin: psycopg2.extensions.connection, pid: int, application: str) -> int:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE %s AND application_name = %s",
            [f"txnlab\\_scratch\\_{pid}\\_%", application],
        )
        return cur.fetchone()[0]


@pytest.mark.parametrize(
    ("signum", "tool", "application"),
    [
        (signal.SIGINT, "txnlab", "txnlab bench client"),
        (signal.SIGTERM, "txnlab", "txnlab bench client"),
        (signal.SIGHUP, "pgbench", "pgbench"),
        (signal.SIGINT, "pgbench", "pgbench"),
    ],
)
def test_a_signal_mid_bench_exits_128_plus_n_and_leaves_nothing(
    server_dsn: str, tmp_path: Path, signum: int, tool: str, application: str,
) -> None:
    driver = tmp_path / "bench_driver.py"
    driver.write_text(DRIVER)
    scratch_tmp = tmp_path / "tmp"  # pgbench's script and logs go in a temporary directory here
    scratch_tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "TMPDIR": str(scratch_tmp)}
    process = subprocess.Popen(
        [sys.executable, str(driver), server_dsn, tool], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    admin = psycopg2.connect(server_dsn)
    admin.autocommit = True
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while _sessions(admin, process.pid, application) < 4:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        time.sleep(0.3)  # mid-run
        assert bool(list(scratch_tmp.iterdir())) == (tool == "pgbench")  # pgbench's files are there
        os.killpg(process.pid, signum)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 128 + signum, stderr
        assert "Traceback" not in stderr
        assert _group_members(process.pid) == []
        assert leftovers(admin, process.pid) == ([], [])
        assert list(scratch_tmp.iterdir()) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        admin.close()
