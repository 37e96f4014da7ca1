"""Runs a BenchPlan: one measured run per tool, level and client count, each from a fresh
copy of the workload's data in the scratch database."""

from __future__ import annotations

from collections.abc import Callable

from txnlab.bench.model import BenchPlan, LoadResult

# progress(label, fraction): the run now going on ("read committed · 8 clients · txnlab")
# and how far along it is, 0.0 to 1.0; called about ten times a second.
Progress = Callable[[str, float], None]


def run_bench(server_dsn: str, plan: BenchPlan, progress: Progress | None = None) -> list[LoadResult]:
    """Measure `plan` on the server at `server_dsn` inside one scratch database, dropped at
    the end however the run ends; results in plan order (level, then clients, then tool).

    Raises UsageError (exit 2) for a scenario without a workload or pgbench asked for a
    Python workload, ScenarioError (exit 2) for workload SQL that fails, ServerError (exit 3)
    when the server cannot be used."""
    raise NotImplementedError("the engine lands with the bench engine branch")
