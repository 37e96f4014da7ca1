"""The results of `txnlab bench`: plain frozen dataclasses, no I/O and no formatting.

One LoadResult per tool, isolation level and client count. Throughput is the server's
count (pg_stat_database.xact_commit over the measured window); the tool's own count
sits beside it, so that a difference shows rather than hides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from txnlab.levels import Level
from txnlab.scenario.model import Scenario

TOOLS = ("txnlab", "pgbench")


@dataclass(frozen=True)
class BenchPlan:
    """What to measure for one scenario: every level × every client count (× each tool).

    Exactly one of `duration_s` (seconds each measured run lasts) and `transactions`
    (transactions each client runs, as pgbench's -t) is set. `retries`: how many times a
    transaction that failed with 40001 or 40P01 is run again (pgbench's --max-tries is
    retries + 1). `seed`: the random generator's seed (None: a fresh one per run).
    """

    scenario: Scenario
    levels: tuple[Level, ...]
    clients: tuple[int, ...]
    duration_s: float | None = None
    transactions: int | None = None
    retries: int = 0
    pgbench: bool = False
    seed: int | None = None


@dataclass(frozen=True)
class Latency:
    """Latency of the committed transactions, in ms, from the first try's start to the
    commit's end (retries included, as pgbench counts it)."""

    median_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class LoadResult:
    """One measured run: one tool, one level, one client count.

    `committed_server` / `rolled_back_server`: the deltas of pg_stat_database.xact_commit /
    xact_rollback for the scratch database over the run, less one commit per session started
    (pg_stat_database.sessions: each session commits one transaction of its own as it starts;
    see bench/server_stats.py), None when the server has no such counters (docs/bench.md).
    `serialization_failures` / `deadlocks`: every 40001 / 40P01 the tool's sessions met, retried
    or given up (bench/run.py). `committed_client`: the tool's own count. `duration_s`:
    the measured window (from all clients connected to the last transaction's end).
    `lock_wait_ms`: lock waits the sampler saw in pg_locks (from waitstart to the last sample
    still waiting): a lower bound. `notes`: one line each, e.g. why the two counts differ or
    a client that gave up on an error pgbench also aborts on.
    """

    scenario: str
    tool: str  # one of TOOLS
    level: Level
    clients: int
    duration_s: float
    committed_server: int | None
    rolled_back_server: int | None
    committed_client: int
    latency: Latency | None  # None when nothing committed
    retries: int
    serialization_failures: int
    deadlocks: int
    failed: int  # transactions given up after the retries
    lock_wait_ms: float
    lock_waits: int
    measures: Mapping[str, float] = field(default_factory=dict)  # the workload's measures, e.g. lost_updates (whole ones as int)
    invariants: Mapping[str, bool] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def tps(self) -> float | None:
        """Committed transactions per second, as the server counted them."""
        if self.committed_server is None or self.duration_s <= 0:
            return None
        return self.committed_server / self.duration_s

    @property
    def tps_client(self) -> float:
        """Committed transactions per second, as the tool counted them."""
        return self.committed_client / self.duration_s if self.duration_s > 0 else 0.0
