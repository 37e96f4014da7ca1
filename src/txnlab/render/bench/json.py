"""`txnlab bench --format json`: one object per measured run (docs/bench.md, "JSON").

The document is a list, one object per level, client count and tool, as issue 13 specifies
it; each object carries txnlab's `schema_version` (README, "JSON output") and the server's
version. Figures are as measured, not rounded; `tps` is the server's count per second, null
when the server has no counter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from txnlab.bench.model import LoadResult
from txnlab.render.bench.report import BenchReport
from txnlab.timeline import JSON_SCHEMA_VERSION


def result_to_dict(result: LoadResult, server_version: str | None) -> dict[str, Any]:
    """One LoadResult as JSON data; times in ms (`latency_ms`, `lock_wait_ms`) or s (`duration_s`)."""
    latency = result.latency
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "server_version": server_version,
        "scenario": result.scenario,
        "tool": result.tool,
        "level": result.level.value,
        "clients": result.clients,
        "tps": result.tps,
        "tps_client": result.tps_client,
        "latency_ms": None if latency is None else {
            "median": latency.median_ms, "p95": latency.p95_ms, "p99": latency.p99_ms},
        "retries": result.retries,
        "serialization_failures": result.serialization_failures,
        "deadlocks": result.deadlocks,
        "failed": result.failed,
        "lock_wait_ms": result.lock_wait_ms,
        "lock_waits": result.lock_waits,
        "committed": result.committed_server,
        "committed_client": result.committed_client,
        "rolled_back": result.rolled_back_server,
        "duration_s": result.duration_s,
        "measures": dict(result.measures),
        "invariants": dict(result.invariants),
        "notes": list(result.notes),
    }


def render_json(reports: Sequence[BenchReport]) -> str:
    """Every scenario's results in one list, in the order they ran."""
    document = [result_to_dict(result, report.server_version) for report in reports for result in report.results]
    return json.dumps(document, indent=2) + "\n"
