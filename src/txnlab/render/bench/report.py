"""What every bench renderer receives: one scenario's plan, the server it ran on, its results."""

from __future__ import annotations

from dataclasses import dataclass

from txnlab.bench.model import BenchPlan, LoadResult
from txnlab.scenario.model import Scenario


@dataclass(frozen=True)
class BenchReport:
    """One scenario's bench: the plan asked for, the server's version (`SHOW server_version`),
    the results in plan order (level, then clients, then tool), as run_bench returns them, and
    with --pgbench the pgbench that ran (`pgbench --version`, e.g. "pgbench (PostgreSQL) 18.6")."""

    plan: BenchPlan
    server_version: str
    results: tuple[LoadResult, ...]
    pgbench: str | None = None

    @property
    def scenario(self) -> Scenario:
        return self.plan.scenario

    @property
    def with_pgbench(self) -> bool:
        """Whether pgbench rows are among the results (`--pgbench`)."""
        return any(result.tool == "pgbench" for result in self.results)
