"""Benchmark: the cost of one matrix cell and the latency of blocked-step detection.

    python benchmarks/bench_engine.py [--repeat N] [--dsn DSN]

With the server already running (as in a workshop), runs every catalogue scenario at
every level N times in one lab, as `txnlab matrix` does (each next cell's schema is
built during the current one), and prints:
- one matrix cell: wall time of run + check, including its fresh state; first for a
  matrix of the plain SQL scenarios (YAML, no wire capture), then for the whole
  catalogue, whose driver-level scenarios (Python, SQLAlchemy, wire tap) include
  deliberate waits such as a 200 ms idle-in-transaction timeout;
- detection latency: from the moment the server says a session started waiting
  (pg_locks.waitstart, server clock) to the moment the monitor saw it (same machine,
  same clock), over every blocked step of every run.
Targets on a 2-core machine: SQL cell median <= 10 ms; detection median <= 1 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

from txnlab.levels import ALL_LEVELS
from txnlab.runner.lab import Lab, open_lab
from txnlab.scenario import Catalogue, Scenario
from txnlab.server.selection import choose_server, resolve_dsn
from txnlab.timeline import Outcome
from txnlab.workflow import Cell, cells, run_cell


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summarize(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<34} n={len(ms):<5} median {statistics.median(ms):7.3f} ms   "
        f"p95 {percentile(ms, 0.95):7.3f} ms   max {max(ms):7.3f} ms"
    )


def matrix_pass(lab: Lab, planned: list[Cell], repeat: int) -> tuple[list[float], list[float], dict[str, list[float]], int]:
    """Cell times, detection latencies, times by scenario, and mismatches over `repeat` passes."""
    for scenario, level in planned:  # warm-up: connections, caches
        run_cell(lab, scenario, level)
    times: list[float] = []
    detection: list[float] = []
    by_scenario: dict[str, list[float]] = {}
    mismatches = 0
    for _ in range(repeat):
        for index, (scenario, level) in enumerate(planned):
            following = planned[(index + 1) % len(planned)][0]
            started = time.perf_counter()
            report = run_cell(lab, scenario, level, then=following)
            elapsed = time.perf_counter() - started
            times.append(elapsed)
            by_scenario.setdefault(scenario.name, []).append(elapsed)
            mismatches += not report.verdict.matches_expectation
            for event in report.timeline.events:
                lock = event.lock
                if event.outcome is Outcome.BLOCKED and lock and lock.wait_started and lock.detected:
                    detection.append(lock.detected - lock.wait_started)
    return times, detection, by_scenario, mismatches


def plain_sql(scenario: Scenario) -> bool:
    return scenario.play is None and not scenario.capture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--dsn")
    args = parser.parse_args()

    scenarios = list(Catalogue().scenarios.values())
    with open_lab(resolve_dsn(choose_server(args.dsn))) as lab:
        sql_cells = cells([s for s in scenarios if plain_sql(s)], ALL_LEVELS)
        sql_times, sql_detection, _, sql_mismatches = matrix_pass(lab, sql_cells, args.repeat)
        all_cells = cells(scenarios, ALL_LEVELS)
        all_times, all_detection, by_scenario, all_mismatches = matrix_pass(lab, all_cells, args.repeat)
        version = lab.server_version

    print(f"PostgreSQL {version}; {args.repeat} repeats; mismatches: {sql_mismatches + all_mismatches}")
    print(summarize(f"cell, SQL matrix ({len(sql_cells)} cells)", sql_times))
    print(summarize(f"cell, whole catalogue ({len(all_cells)})", all_times))
    print(summarize("blocked-step detection latency", sql_detection + all_detection))
    print("slowest scenarios (median per cell):")
    for name, times in sorted(by_scenario.items(), key=lambda item: -statistics.median(item[1]))[:5]:
        print(f"  {name:<40} {statistics.median(times) * 1000:7.3f} ms")


if __name__ == "__main__":
    main()
