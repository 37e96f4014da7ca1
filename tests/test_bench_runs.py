"""The bench engine against the real server: the anomalies a load produces are counted from
the final data, the server's count of committed transactions equals the tool's exactly, pgbench's
results are read back, and a failing workload leaves nothing behind."""

from __future__ import annotations

import multiprocessing
import os
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import psycopg2
import pytest

from bench_workloads import atm, bank_transfer, workload_scenario, ATM_DATA, ATM_INVARIANTS, ATM_MEASURES, ATM_SETUP
from conftest import leftovers
from txnlab.bench.model import BenchPlan, LoadResult
from txnlab.bench.run import run_bench
from txnlab.bench.server_stats import observer, settled
from txnlab.errors import ScenarioError, ServerError, UsageError
from txnlab.levels import Level
from txnlab.scenario.model import Workload
from txnlab.server.connect import with_params
from txnlab.server.scratch import ScratchDatabase

RC, RR, SER = Level.READ_COMMITTED, Level.REPEATABLE_READ, Level.SERIALIZABLE


def assert_counts_agree(result: LoadResult, stopped: int = 0) -> None:
    """The server committed what the tool counted, or more with a note that says so: the server
    counts every session of the database, and an autovacuum visit (seen by the sampler or too
    short for it) commits there too. A tool that lost count would be below the server in every
    run: test_the_servers_count_equals_the_clients_exactly_over_several_runs holds them to
    equality. Every 40001/40P01 met ended in a ROLLBACK, as did the transaction of each client
    `stopped` by another error."""
    assert result.committed_server is not None
    assert result.committed_server >= result.committed_client, result.notes
    if result.committed_server > result.committed_client:
        assert [n for n in result.notes if f"than {result.tool} counted" in n], result.notes
    else:
        assert not [n for n in result.notes if "server committed" in n]
    if result.tool == "txnlab":
        assert result.rolled_back_server == result.serialization_failures + result.deadlocks + stopped


def test_a_new_session_commits_one_transaction_of_its_own_which_the_count_takes_off(server_dsn: str) -> None:
    with ScratchDatabase(server_dsn) as dsn:
        scratch = psycopg2.extensions.parse_dsn(dsn)["dbname"]
        watcher = observer(server_dsn)
        try:
            before = settled(watcher, scratch)
            for _ in range(3):
                psycopg2.connect(dsn).close()  # psycopg2 sends no statement of its own
            after = settled(watcher, scratch)
        finally:
            watcher.close()
    assert before is not None and after is not None
    assert after.committed - before.committed == 3
    assert after.sessions - before.sessions == 3
    assert after.committed_since(before) == 0


def test_lost_updates_are_counted_at_read_committed_and_none_at_serializable_with_retries(server_dsn: str) -> None:
    plan = BenchPlan(atm(), (RC, RR, SER), (4,), duration_s=1.0, retries=100)
    read_committed, repeatable_read, serializable = run_bench(server_dsn, plan)
    assert [r.level for r in (read_committed, repeatable_read, serializable)] == [RC, RR, SER]
    # The level reached every session through the startup options: RR refuses the concurrent update.
    assert repeatable_read.measures["lost_updates"] == 0 and repeatable_read.retries > 0
    assert read_committed.measures["lost_updates"] > 0
    assert read_committed.lock_waits > 0 and read_committed.lock_wait_ms > 0  # the hot row's UPDATEs queue
    assert read_committed.invariants == {"no_lost_update": False, "balance_matches_ledger": False}
    assert serializable.measures["lost_updates"] == 0
    assert serializable.invariants == {"no_lost_update": True, "balance_matches_ledger": True}
    assert serializable.retries > 0
    # Every 40001 met was either retried or its transaction given up: after the deadline (no
    # retry then, as pgbench) or, on a loaded machine, after 100 retries lost to the hot row.
    assert serializable.serialization_failures == serializable.retries + serializable.failed
    for result in (read_committed, serializable):
        assert_counts_agree(result)
        assert result.latency is not None and 0 < result.latency.median_ms <= result.latency.p95_ms <= result.latency.p99_ms


def test_the_servers_count_equals_the_clients_exactly_over_several_runs(server_dsn: str) -> None:
    transfers = run_bench(server_dsn, BenchPlan(bank_transfer(), (RC,), (1, 2, 8), duration_s=0.7))
    contended = run_bench(server_dsn, BenchPlan(atm(), (SER,), (8,), duration_s=1.0, retries=2))
    runs = [*transfers, *contended]
    for result in runs:
        assert result.committed_client > 0
        assert_counts_agree(result)
    # Exactly equal, but for at most one run an autovacuum visit may fall in (about one a minute
    # per database): a miscount of the tool's would show in every run.
    assert sum(r.committed_server == r.committed_client for r in runs) >= len(runs) - 1, [r.notes for r in runs]
    assert [r.clients for r in transfers] == [1, 2, 8]
    assert all(r.invariants == {"money_kept": True} for r in transfers)
    (hot,) = contended
    assert hot.retries > 0 and hot.failed > 0  # two retries are not enough for 8 clients on one row
    assert hot.serialization_failures == hot.retries + hot.failed


def test_transactions_mode_runs_that_many_per_client_and_reports_progress(server_dsn: str) -> None:
    seen: list[tuple[str, float]] = []
    (result,) = run_bench(server_dsn, BenchPlan(bank_transfer(), (RC,), (3,), transactions=40),
                          lambda label, fraction: seen.append((label, fraction)))
    assert result.committed_client == 120
    assert_counts_agree(result)
    assert {label for label, _ in seen} == {"read committed · 3 clients · txnlab"}
    fractions = [fraction for _, fraction in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_pgbench_runs_the_same_script_and_its_logs_are_read_back(server_dsn: str) -> None:
    plan = BenchPlan(atm(), (RR,), (2,), duration_s=1.0, retries=20, pgbench=True)
    ours, theirs = run_bench(server_dsn, plan)
    assert (ours.tool, theirs.tool) == ("txnlab", "pgbench")
    assert theirs.level is RR
    assert theirs.committed_client > 0 and theirs.latency is not None
    assert 0.5 < theirs.duration_s < 1.5
    assert theirs.measures["lost_updates"] == 0
    assert_counts_agree(theirs)
    assert theirs.retries > 0  # pgbench's log carries the retries; PGOPTIONS gave it the level


def test_pgbench_transactions_mode_counts_every_transaction(server_dsn: str) -> None:
    plan = BenchPlan(bank_transfer(), (RC,), (2,), transactions=50, pgbench=True)
    ours, theirs = run_bench(server_dsn, plan)
    assert ours.committed_client == theirs.committed_client == 100
    assert_counts_agree(theirs)


# Every first try fails with 40001 after noting its draws in sequences (which no rollback undoes);
# the retry checks that it drew the same values, else it fails with an error that stops the client.
FLAKY_SETUP = ("""
CREATE SEQUENCE tries;
CREATE SEQUENCE first_r;
CREATE SEQUENCE first_s;
CREATE TABLE done (r bigint, s bigint);
CREATE FUNCTION flaky(r bigint, s bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('tries') % 2 = 1 THEN
    PERFORM setval('first_r', r), setval('first_s', s);
    RAISE EXCEPTION 'first try' USING ERRCODE = 'serialization_failure';
  END IF;
  IF r <> (SELECT last_value FROM first_r) OR s <> (SELECT last_value FROM first_s) THEN
    RAISE EXCEPTION 'the retry drew % %, the first try % %', r, s,
      (SELECT last_value FROM first_r), (SELECT last_value FROM first_s);
  END IF;
END $$;
""",)
FLAKY_SCRIPT = """\
\\set r random(1, 1000000000)
\\set s random(1, :r)
BEGIN;
SELECT flaky(:r, :s);
INSERT INTO done VALUES (:r, :s);
COMMIT;
"""


def test_a_retry_replays_its_first_trys_random_draws_as_pgbench_does(server_dsn: str) -> None:
    workload = Workload(script=FLAKY_SCRIPT, invariants={"distinct_draws": "SELECT count(DISTINCT r) = 30 FROM done"})
    scenario = workload_scenario("flaky", FLAKY_SETUP, workload)
    (result,) = run_bench(server_dsn, BenchPlan(scenario, (RC,), (1,), transactions=30, retries=1))
    assert not [note for note in result.notes if "stopped" in note], result.notes
    assert result.committed_client == 30 and result.retries == 30 and result.failed == 0
    assert result.invariants == {"distinct_draws": True}  # a fresh draw for each transaction
    assert_counts_agree(result)


# The catalogue's update_balance (atm-retry-on-serialization-failure) less its conn.commit():
# here txnlab's commit after the function is the one that ends each transaction.
PYTHON_WORKLOAD = """\
def update_balance(conn, rng):
    amount = rng.randint(1, 100)
    with conn.cursor() as cur:
        cur.execute("SELECT balance, updates FROM accounts WHERE id = 1")
        balance, updates = cur.fetchone()
        cur.execute("UPDATE accounts SET balance = %s, updates = %s WHERE id = 1", (balance + amount, updates + 1))
        cur.execute("INSERT INTO ledger (amount) VALUES (%s)", (amount,))
"""


def python_atm(tmp_path: Path, source: str = PYTHON_WORKLOAD) -> object:
    """The ATM workload as `update_balance(conn, rng)` in a module written from `source`."""
    module = tmp_path / "atm_function.py"
    module.write_text(source)
    workload = Workload(function="update_balance", setup=ATM_DATA, measures=ATM_MEASURES, invariants=ATM_INVARIANTS)
    return workload_scenario("atm-function", ATM_SETUP, workload, source=module)


def test_a_python_function_workload_loses_updates_at_read_committed_and_is_retried_at_serializable(
    server_dsn: str, tmp_path: Path,
) -> None:
    plan = BenchPlan(python_atm(tmp_path), (RC, SER), (4,), duration_s=1.0, retries=100)
    read_committed, serializable = run_bench(server_dsn, plan)
    assert read_committed.measures["lost_updates"] > 0
    assert serializable.measures["lost_updates"] == 0 and serializable.retries > 0
    assert serializable.invariants == {"no_lost_update": True, "balance_matches_ledger": True}
    for result in (read_committed, serializable):
        assert_counts_agree(result)  # txnlab's commit after the function is the one transaction


SWALLOWING_WORKLOAD = """\
import psycopg2


def update_balance(conn, rng):
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT 1 / 0")
        except psycopg2.Error:
            pass  # the bug: the transaction is failed now, and COMMIT will be answered with ROLLBACK
"""


def test_a_python_workload_that_swallows_an_error_fails_the_bench_instead_of_counting_a_rollback_as_a_commit(
    server_dsn: str, tmp_path: Path,
) -> None:
    scenario = python_atm(tmp_path, SWALLOWING_WORKLOAD)
    with pytest.raises(ScenarioError, match="returned with its transaction failed"):
        run_bench(server_dsn, BenchPlan(scenario, (RC,), (2,), duration_s=1.0))
    nothing_left(server_dsn)


def test_pgbench_refuses_a_python_function_workload(server_dsn: str, tmp_path: Path) -> None:
    plan = BenchPlan(python_atm(tmp_path), (RC,), (2,), duration_s=1.0, pgbench=True)
    with pytest.raises(UsageError, match="pgbench runs SQL workloads only; atm-function's workload is "
                                         "Python function update_balance"):
        run_bench(server_dsn, plan)


@pytest.mark.parametrize("tool", ["txnlab", "pgbench"])
def test_a_client_stopped_by_an_error_other_than_40001_or_40p01_fails_the_bench_at_its_line(
    server_dsn: str, tool: str
) -> None:
    # Client 0 divides by zero: pgbench aborts such a client and calls its run incomplete. For
    # pgbench (which runs second) only its own sessions fail: their application_name is pgbench.
    script = ("SELECT 1 / :client_id;\n" if tool == "txnlab" else
              "SELECT 1 / (current_setting('application_name') <> 'pgbench')::int;\n")
    scenario = replace(atm(script), lines={"workload.script": 40})
    plan = BenchPlan(scenario, (RC,), (2,), duration_s=1.0, pgbench=tool == "pgbench")
    with pytest.raises(ScenarioError) as caught:
        run_bench(server_dsn, plan)
    message = str(caught.value)
    assert "division by zero" in message and "read committed · 2 clients" in message
    if tool == "txnlab":
        assert message.startswith("atm-lost-update.yaml:") and "client 0: 22012" in message
    nothing_left(server_dsn)


def test_a_client_whose_connection_the_server_ends_fails_the_bench_as_a_server_error(server_dsn: str) -> None:
    def terminate_clients() -> None:
        time.sleep(0.8)
        with psycopg2.connect(server_dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'txnlab bench client'")
        conn.close()

    killer = threading.Thread(target=terminate_clients)
    killer.start()
    try:
        with pytest.raises(ServerError, match="the server ended a bench client's connection in the run read committed"):
            run_bench(server_dsn, BenchPlan(bank_transfer(), (RC,), (2,), duration_s=3.0))
    finally:
        killer.join()
    nothing_left(server_dsn)


def nothing_left(server_dsn: str) -> None:
    conn = psycopg2.connect(server_dsn)
    try:
        assert leftovers(conn, os.getpid()) == ([], [])
    finally:
        conn.close()
    assert multiprocessing.active_children() == []


def test_failing_workload_sql_is_a_scenario_error_at_its_line_and_leaves_nothing(server_dsn: str) -> None:
    script = textwrap.dedent("""\
        BEGIN;
        UPDATE accounts SET balance = balance + 1 WHERE id = 1;
        UPDATE no_such_table SET x = 1;
        COMMIT;
    """)
    scenario = replace(atm(script), lines={"workload.script": 20})
    with pytest.raises(ScenarioError) as raised:
        run_bench(server_dsn, BenchPlan(scenario, (RC,), (2,), duration_s=1.0, pgbench=True))
    assert str(raised.value).startswith("atm-lost-update.yaml:22: workload script: failed in the run read committed · "
                                        "2 clients · txnlab, client ")
    assert ": 42P01: relation \"no_such_table\" does not exist" in str(raised.value)
    nothing_left(server_dsn)


def test_a_bad_script_is_refused_before_anything_runs(server_dsn: str) -> None:
    scenario = replace(atm("\\sleep 1\nSELECT 1;\n"), lines={"workload.script": 5})
    with pytest.raises(ScenarioError, match=r"^atm-lost-update.yaml:5: workload script: unsupported command \\sleep"):
        run_bench(server_dsn, BenchPlan(scenario, (RC,), (2,), duration_s=1.0))
    nothing_left(server_dsn)


def test_a_normal_run_leaves_nothing_behind(server_dsn: str) -> None:
    run_bench(server_dsn, BenchPlan(bank_transfer(), (RC,), (2,), transactions=10, pgbench=True))
    nothing_left(server_dsn)


@pytest.mark.parametrize(("sql", "got"), [("SELECT 'many'", "('many',)"), ("SELECT 1 UNION ALL SELECT 2", "2 rows"),
                                          ("SELECT 1, 2", "(1, 2)"), ("SELECT 1 WHERE false", "0 rows")])
def test_a_measure_that_is_not_one_number_is_a_scenario_error_at_its_line(server_dsn: str, sql: str, got: str) -> None:
    scenario = atm()
    workload = replace(scenario.workload, measures={"lost_updates": sql})
    scenario = replace(scenario, workload=workload, lines={"workload.measure.lost_updates": 31})
    expected = f"atm-lost-update.yaml:31: measure lost_updates must return one row of one column, a number; got {got}"
    with pytest.raises(ScenarioError) as caught:
        run_bench(server_dsn, BenchPlan(scenario, (RC,), (1,), transactions=1))
    assert str(caught.value).endswith(expected)
    nothing_left(server_dsn)


def test_the_dsns_own_startup_options_reach_every_session_beside_the_level(server_dsn: str) -> None:
    dsn = with_params(server_dsn, options="-c statement_timeout=12345")
    check = "SELECT 1 / (current_setting('statement_timeout') = '12345ms' AND current_setting('transaction_isolation') = 'repeatable read')::int;\n"
    ours, theirs = run_bench(dsn, BenchPlan(atm(check), (RR,), (2,), transactions=5, pgbench=True))
    assert ours.committed_client == theirs.committed_client == 10, (ours.notes, theirs.notes)


def test_failing_workload_setup_is_a_scenario_error_at_its_line_and_leaves_nothing(server_dsn: str) -> None:
    scenario = atm()
    workload = replace(scenario.workload, setup=("INSERT INTO no_such_table VALUES (1)",))
    scenario = replace(scenario, workload=workload, lines={"workload.setup.0": 12})
    with pytest.raises(ScenarioError, match=r"^atm-lost-update.yaml:12: workload setup SQL failed: 42P01 "):
        run_bench(server_dsn, BenchPlan(scenario, (RC,), (2,), duration_s=1.0))
    nothing_left(server_dsn)


def test_a_whole_number_measure_stays_exact_beyond_a_floats_precision(server_dsn: str) -> None:
    scenario = atm()
    workload = replace(scenario.workload, measures={"big": "SELECT 9007199254740993::bigint",
                                                    "whole_numeric": "SELECT 12.000::numeric", "ratio": "SELECT 0.5"})
    (result,) = run_bench(server_dsn, BenchPlan(replace(scenario, workload=workload), (RC,), (1,), transactions=1))
    assert result.measures == {"big": 9007199254740993, "whole_numeric": 12, "ratio": 0.5}
    assert isinstance(result.measures["big"], int)


def test_each_runs_schema_is_dropped_after_its_checks_so_the_next_run_starts_alone(server_dsn: str) -> None:
    """Old runs' tables left in the scratch database gave autovacuum work during later runs
    (a cost to both tools, and commits in the server's count): at the start of each run, no
    earlier run's schema is left."""
    seen: dict[str, list[str]] = {}

    def schemas_at_start(label: str, fraction: float) -> None:
        if fraction != 0.0 or label in seen:
            return
        with psycopg2.connect(server_dsn) as admin, admin.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"txnlab\\_scratch\\_{os.getpid()}\\_%"])
            (database,) = cur.fetchone()
        admin.close()
        conn = psycopg2.connect(with_params(server_dsn, dbname=database))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'txnlab\\_bench\\_%' ORDER BY 1")
                seen[label] = [name for (name,) in cur.fetchall()]
        finally:
            conn.close()

    run_bench(server_dsn, BenchPlan(bank_transfer(), (RC,), (1, 2), transactions=5, pgbench=True), schemas_at_start)
    assert list(seen.values()) == [[], [], [], []], seen
