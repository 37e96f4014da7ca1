"""Benchmark: the cost of one matrix cell and the latency of blocked-step detection.

    python benchmarks/bench_engine.py [--repeat N] [--dsn DSN]

Runs every catalogue scenario at every level N times in one lab (the server already
running, as for a workshop) and prints:
- one matrix cell: wall time of run + check, including its fresh state (the schema of
  each next cell is built during the current one, as `txnlab matrix` does), for the
  whole catalogue and for the plain SQL scenarios alone;
- detection latency: from the moment the server says a session started waiting
  (pg_locks.waitstart, server clock) to the moment the monitor saw it (same machine,
  same clock), over every blocked step of every run.
Targets on a 2-core machine: cell median <= 10 ms; detection median <= 1 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

from txnlab.levels import ALL_LEVELS
from txnlab.runner.lab import open_lab
from txnlab.scenario import Catalogue
from txnlab.server.selection import choose_server, resolve_dsn
from txnlab.timeline import Outcome
from txnlab.workflow import cells, run_cell


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summarize(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<34} n={len(ms):<5} median {statistics.median(ms):7.3f} ms   "
        f"p95 {percentile(ms, 0.95):7.3f} ms   max {max(ms):7.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--dsn")
    args = parser.parse_args()

    scenarios = list(Catalogue().scenarios.values())
    planned = cells(scenarios, ALL_LEVELS)
    server_dsn = resolve_dsn(choose_server(args.dsn))
    cell_times: list[float] = []
    plain_sql_times: list[float] = []
    by_scenario: dict[str, list[float]] = {}
    detection: list[float] = []
    mismatches = 0
    with open_lab(server_dsn) as lab:
        for scenario, level in planned:  # warm-up: connections, caches
            run_cell(lab, scenario, level)
        for _ in range(args.repeat):
            for index, (scenario, level) in enumerate(planned):
                following = planned[(index + 1) % len(planned)][0]  # built during this cell, as in a matrix
                started = time.perf_counter()
                report = run_cell(lab, scenario, level, then=following)
                elapsed = time.perf_counter() - started
                cell_times.append(elapsed)
                if scenario.play is None and not scenario.capture:
                    plain_sql_times.append(elapsed)
                by_scenario.setdefault(scenario.name, []).append(elapsed)
                mismatches += not report.verdict.matches_expectation
                for event in report.timeline.events:
                    lock = event.lock
                    if event.outcome is Outcome.BLOCKED and lock and lock.wait_started and lock.detected:
                        detection.append(lock.detected - lock.wait_started)
        version = lab.server_version

    print(f"PostgreSQL {version}; {len(planned)} cells x {args.repeat} repeats; mismatches: {mismatches}")
    print(summarize("matrix cell, whole catalogue", cell_times))
    print(summarize("matrix cell, SQL scenarios", plain_sql_times))
    print("  (SQL scenarios: YAML, no wire capture; the rest run Python, SQLAlchemy or a wire tap)")
    if detection:
        print(summarize("blocked-step detection latency", detection))
    print("slowest scenarios (median per cell):")
    slowest = sorted(by_scenario.items(), key=lambda item: -statistics.median(item[1]))[:5]
    for name, times in slowest:
        print(f"  {name:<40} {statistics.median(times) * 1000:7.3f} ms")


if __name__ == "__main__":
    main()
