"""The catalogue's workloads count what they claim, on a live server, through the bench engine
(txnlab bench's run_bench) with both tools: txnlab's clients and pgbench run the same script
(a Python workload runs through txnlab only), each for a second with four clients, in a
scratch database built from the scenario's setup and the workload's; the measures are read
afterwards. Lost updates appear at READ COMMITTED and not at SERIALIZABLE with retries; a
queue without locks does the same job twice, with them never."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from txnlab.bench.model import BenchPlan, LoadResult
from txnlab.bench.run import run_bench
from txnlab.levels import Level
from txnlab.scenario import Catalogue, Scenario

RC, SER = Level.READ_COMMITTED, Level.SERIALIZABLE
CLIENTS = 4


def load(server_dsn: str, scenario: Scenario, level: Level, retries: int) -> list[LoadResult]:
    """One second of the scenario's workload at `level` through each tool that can run it."""
    assert scenario.workload is not None
    plan = BenchPlan(scenario, (level,), (CLIENTS,), duration_s=1.0, retries=retries,
                     pgbench=scenario.workload.script is not None)
    results = run_bench(server_dsn, plan)
    assert [r.tool for r in results] == (["txnlab", "pgbench"] if plan.pgbench else ["txnlab"])
    assert all(r.committed_client > 0 for r in results)
    return results


@pytest.mark.parametrize("name", ["atm-lost-update", "atm-retry-on-serialization-failure"])
def test_the_read_then_write_atm_loses_deposits_at_read_committed_and_none_at_serializable_with_retries(
    server_dsn: str, catalogue: Catalogue, name: str
) -> None:
    scenario = catalogue.resolve(name)
    for lossy in load(server_dsn, scenario, RC, 0):
        assert lossy.measures["lost_updates"] > 0 and lossy.measures["money_vanished"] > 0, lossy.tool
        assert lossy.invariants == {"balance_matches_ledger": False}
    for safe in load(server_dsn, scenario, SER, 10):
        assert safe.measures == {"lost_updates": 0, "money_vanished": 0}, safe.tool
        assert safe.invariants == {"balance_matches_ledger": True}


@pytest.mark.parametrize("name", ["atm-atomic-update", "atm-select-for-update"])
def test_the_atm_fixes_lose_nothing_at_read_committed(server_dsn: str, catalogue: Catalogue, name: str) -> None:
    for counted in load(server_dsn, catalogue.resolve(name), RC, 0):
        assert counted.measures == {"lost_updates": 0, "money_vanished": 0}, counted.tool


def test_the_doctors_leave_shifts_with_nobody_on_call_below_serializable_and_never_at_serializable(
    server_dsn: str, catalogue: Catalogue
) -> None:
    scenario = catalogue.resolve("write-skew-doctors")
    for skewed in load(server_dsn, scenario, RC, 0):
        assert skewed.measures["nobody_on_call"] > 0, skewed.tool
        assert skewed.invariants == {"someone_always_on_call": False}
    for safe in load(server_dsn, scenario, SER, 10):
        assert safe.measures["nobody_on_call"] == 0 and safe.measures["went_off_call"] > 0, safe.tool
        assert safe.invariants == {"someone_always_on_call": True}


@pytest.mark.parametrize("name", ["skip-locked-job-queue", "job-queue-for-update"])
def test_a_locked_queue_never_does_a_run_twice_and_an_unlocked_one_does(
    server_dsn: str, catalogue: Catalogue, name: str
) -> None:
    scenario = catalogue.resolve(name)
    for locked in load(server_dsn, scenario, RC, 0):
        assert locked.measures["jobs_done_twice"] == 0 and locked.measures["jobs_done"] > 0, locked.tool
    assert scenario.workload is not None and scenario.workload.script is not None
    unlocked_script = re.sub(r" FOR UPDATE( SKIP LOCKED)? \\gset", r" \\gset", scenario.workload.script)
    assert unlocked_script != scenario.workload.script
    unlocked = replace(scenario, workload=replace(scenario.workload, script=unlocked_script))
    for racy in load(server_dsn, unlocked, RC, 0):
        assert racy.measures["jobs_done_twice"] > 0, racy.tool


@pytest.mark.parametrize("level", [RC, Level.REPEATABLE_READ, SER])
def test_ordered_transfers_neither_deadlock_nor_create_or_destroy_money(
    server_dsn: str, catalogue: Catalogue, level: Level
) -> None:
    for counted in load(server_dsn, catalogue.resolve("bank-transfer"), level, 10):
        assert counted.measures["money_created_or_destroyed"] == 0 and counted.measures["transfers"] > 0
        assert counted.invariants == {"total_unchanged": True, "balances_match_transfers": True}
        assert counted.deadlocks == 0, counted.tool
