"""Benchmark: what recording the history (issue 11) adds to a matrix cell's cost.

    python benchmarks/history_overhead.py [--repeat N] [--catalogue] [--dsn DSN]

With the server already running, opens two labs in one process, one recording the history
and one not (`open_lab(history=...)`), and runs the Hermitage suite (15 scenarios x 4 levels;
`--catalogue`: every YAML and Python scenario at every level) N times in each, as `txnlab
matrix` does (each next cell's schema built during the current one; run + check, and whatever
else `run_cell` does). The two labs take turns cell by cell, in alternating order from pass to
pass, so that both meet the same machine noise. Prints each cell's median wall time both ways
and the overhead, then the median cell both ways and the median and worst per-cell overhead.
Target: the history adds at most 20 % to a cell's median cost. The machine's load average
(1, 5, 15 min) is printed before and after: the overhead grows with it (the next cell's schema
and triggers are built on the second core while a cell runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict

from txnlab.levels import ALL_LEVELS
from txnlab.runner.lab import Lab, open_lab
from txnlab.scenario import Catalogue
from txnlab.server.selection import choose_server, resolve_dsn
from txnlab.workflow import Cell, cells, run_cell

TARGET = 20.0  # percent of a cell's median


def timed_pass(lab: Lab, planned: list[Cell], times: dict[tuple[str, str], list[float]], index: int) -> None:
    """Run cell `index` of `planned` in `lab` (building the next one's schema meanwhile); add its time."""
    scenario, level = planned[index]
    following = planned[(index + 1) % len(planned)][0]
    started = time.perf_counter()
    run_cell(lab, scenario, level, then=following)
    times[(scenario.name, level.value)].append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--catalogue", action="store_true", help="every catalogue scenario, not only Hermitage's")
    parser.add_argument("--dsn")
    args = parser.parse_args()

    catalogue = Catalogue().scenarios.values()
    chosen = [s for s in catalogue if not s.isolationtester and (args.catalogue or "hermitage" in s.tags)]
    planned = cells(chosen, ALL_LEVELS)
    dsn = resolve_dsn(choose_server(args.dsn))
    load_before = os.getloadavg()
    with open_lab(dsn, history=True) as on, open_lab(dsn, history=False) as off:
        for scenario, level in planned:  # warm-up: connections, caches
            run_cell(on, scenario, level)
            run_cell(off, scenario, level)
        with_history: dict[tuple[str, str], list[float]] = defaultdict(list)
        without: dict[tuple[str, str], list[float]] = defaultdict(list)
        for round_ in range(args.repeat):
            for index in range(len(planned)):
                turns = [(on, with_history), (off, without)]
                for lab, times in turns if round_ % 2 == 0 else reversed(turns):
                    timed_pass(lab, planned, times, index)

    load = " -> ".join(", ".join(f"{x:.2f}" for x in avg) for avg in (load_before, os.getloadavg()))
    print(f"{len(planned)} cells x {args.repeat} runs each way; medians in ms; load average {load}")
    print(f"{'cell':<52} {'history':>9} {'without':>9} {'overhead':>9}")
    overheads = []
    for key in with_history:
        a, b = statistics.median(with_history[key]) * 1000, statistics.median(without[key]) * 1000
        overheads.append((a - b) / b * 100)
        print(f"{key[0] + ' [' + key[1] + ']':<52} {a:9.2f} {b:9.2f} {overheads[-1]:8.1f}%")
    all_on = statistics.median(t for ts in with_history.values() for t in ts) * 1000
    all_off = statistics.median(t for ts in without.values() for t in ts) * 1000
    print(f"\nmedian cell: {all_on:.2f} ms with the history, {all_off:.2f} ms without "
          f"({(all_on - all_off) / all_off * 100:+.1f} %)")
    print(f"per-cell overhead: median {statistics.median(overheads):+.1f} %, worst {max(overheads):+.1f} % "
          f"(target <= {TARGET:g} %)")


if __name__ == "__main__":
    main()
