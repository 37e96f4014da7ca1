"""Benchmark: txnlab's load generator against pgbench, side by side on one server.

    python benchmarks/bench_contention.py [--dsn DSN] [--rounds 3] [--seconds 5] [--clients 2,8]

Runs the ordered bank-transfer workload (ten accounts, a random amount moved between two
distinct random accounts, the lower id updated first: no deadlocks) at READ COMMITTED through
txnlab and through pgbench, alternating the two tools run after run (txnlab, then pgbench, per client
count) and repeating, so that
drift (other load, caches, autovacuum) falls on both. Prints each run's server-side tps, then
per client count each tool's median tps and the median (and range) of the ratio txnlab /
pgbench over the pairs of runs made one right after the other.
Target: >= 0.85 at 2 and 8 clients. The machine's load average is printed beside: on a shared
machine the figures move.
"""

from __future__ import annotations

import argparse
import os
import statistics

from txnlab.bench.model import BenchPlan
from txnlab.bench.run import run_bench
from txnlab.levels import Level
from txnlab.scenario import Catalogue
from txnlab.server.selection import choose_server, resolve_dsn

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=None, help="server DSN (default: as txnlab chooses)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="2,8")
    args = parser.parse_args()
    dsn = args.dsn or resolve_dsn(choose_server())
    clients = tuple(int(c) for c in args.clients.split(","))
    scenario = Catalogue().resolve("bank-transfer")
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    # One scratch database for every round; round 0 warms it up (a new database's first run is
    # slower, whichever tool makes it) and is not counted.
    plan = BenchPlan(scenario, (Level.READ_COMMITTED,), clients * (args.rounds + 1), duration_s=args.seconds,
                     pgbench=True)
    tps: dict[tuple[str, int], list[float]] = {}
    for index, result in enumerate(run_bench(dsn, plan)):  # per client count: txnlab, then pgbench at once
        round_ = index // (2 * len(clients))
        rate = result.tps if result.tps is not None else result.tps_client
        if round_:
            tps.setdefault((result.tool, result.clients), []).append(rate)
        print(f"round {round_ or 'warm-up'} · {result.clients} clients · {result.tool:<7} {rate:9.1f} tps"
              f"  (server {result.committed_server}, client {result.committed_client}, {result.duration_s:.2f} s)"
              + (f"  {'; '.join(result.notes)}" if result.notes else ""))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for n in clients:
        ours, theirs = tps[("txnlab", n)], tps[("pgbench", n)]
        ratios = sorted(a / b for a, b in zip(ours, theirs))
        print(f"{n} clients: txnlab {statistics.median(ours):.1f} tps, pgbench {statistics.median(theirs):.1f} tps "
              f"(medians); ratio of each pair: median {statistics.median(ratios):.2f}, "
              f"range {ratios[0]:.2f}-{ratios[-1]:.2f} over {len(ratios)} pairs")


if __name__ == "__main__":
    main()
