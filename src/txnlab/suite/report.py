"""`txnlab specs` output: a line per spec, the summary, the diffs (text), or one JSON document.

JSON (`--format json`), version 1:
  {"version": 1, "server_version": "18.6", "jobs": 4, "duration_ms": 8123.4,
   "summary": {"specs": 105, "ok": 104, "failed": 1, "not_applicable": 0},
   "specs": [{"name": "deadlock-hard", "spec": "PATH", "status": "ok" | "failed" | "not applicable",
              "duration_ms": 655.2 (0 when not run), "lane": 0 (null when not run),
              "expected": the expected file it matched, or the closest one for a failure (null when not run),
              "reason": why not applicable, or why a failure has no output (else null),
              "diff": the unified diff of a failure (else null),
              "results": the file its output was written to with --results (else null)}, ...]}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from txnlab.suite.lanes import FAILED, NOT_APPLICABLE, OK, SpecResult

LABELS = {OK: "ok", FAILED: "FAILED", NOT_APPLICABLE: "not applicable"}
NAME_WIDTH = 36  # as pg_regress pads test names


@dataclass(frozen=True)
class Totals:
    """How many specs ended each way, and the run's wall time (seconds)."""

    specs: int
    ok: int
    failed: int
    not_applicable: int
    duration: float


def totals(results: Sequence[SpecResult], duration: float) -> Totals:
    """Count the results by status."""
    count = {status: sum(1 for r in results if r.status == status) for status in LABELS}
    return Totals(len(results), count[OK], count[FAILED], count[NOT_APPLICABLE], duration)


def spec_line(result: SpecResult) -> str:
    """`ok              NAME    123 ms`; a spec not run gives its reason instead of a time, and
    a failure without output its reason after the time, each on one line."""
    label = f"{LABELS[result.status]:<15} {result.planned.case.name:<{NAME_WIDTH}}"
    if result.status == NOT_APPLICABLE:
        return f"{label} {' '.join((result.reason or '').split())}"
    line = f"{label} {result.duration * 1000:7.0f} ms"
    return f"{line}  ({' '.join(result.reason.split())})" if result.reason else line


def summary_line(counts: Totals, jobs: int) -> str:
    """`105 specs: 104 ok, 1 failed, 0 not applicable (8.1 s, 4 lanes)`."""
    lanes = f"{jobs} lane" + ("s" if jobs != 1 else "")
    return (f"{counts.specs} specs: {counts.ok} ok, {counts.failed} failed, {counts.not_applicable} not applicable "
            f"({counts.duration:.1f} s, {lanes})")


def diffs(results: Sequence[SpecResult]) -> str:
    """The failures' unified diffs, one after another, as in pg_regress's regression.diffs."""
    return "".join(r.comparison.diff for r in results if r.status == FAILED and r.comparison is not None)


def render_json(results: Sequence[SpecResult], counts: Totals, jobs: int, server_version: str,
                written: dict[str, Path]) -> str:
    """The JSON document described in this module's docstring; `written`: spec name -> its results file."""
    document = {
        "version": 1,
        "server_version": server_version,
        "jobs": jobs,
        "duration_ms": round(counts.duration * 1000, 1),
        "summary": {"specs": counts.specs, "ok": counts.ok, "failed": counts.failed,
                    "not_applicable": counts.not_applicable},
        "specs": [_spec(r, written.get(r.planned.case.name)) for r in results],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _spec(result: SpecResult, written: Path | None) -> dict[str, object]:
    comparison = result.comparison
    return {
        "name": result.planned.case.name,
        "spec": str(result.planned.case.path),
        "status": result.status,
        "duration_ms": round(result.duration * 1000, 1),
        "lane": result.lane,
        "expected": str(comparison.closest) if comparison is not None else None,
        "reason": result.reason,
        "diff": comparison.diff if comparison is not None and comparison.diff else None,
        "results": str(written) if written is not None else None,
    }
