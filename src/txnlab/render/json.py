"""JSON output, a stable documented schema (see README, "JSON output")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from txnlab.checks import Finding, Verdict
from txnlab.render.describe import level_value
from txnlab.render.report import RunReport
from txnlab.timeline import JSON_SCHEMA_VERSION, timeline_to_dict


def _findings(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [{"subject": f.subject, "expected": f.expected, "observed": f.observed, "ok": f.ok} for f in findings]


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    """A verdict as JSON data: what the text, Markdown and HTML verdicts say, keys added
    in schema_version 2 included (`alternative`, `sqlstate_changes`, `alternatives_missed`,
    `unjudged`: why no expectation applies, and then `matches_expectation` is null)."""
    return {
        "scenario": verdict.scenario,
        "level": verdict.level.value,
        "matches_expectation": verdict.matches_expectation if verdict.unjudged is None else None,
        "unjudged": verdict.unjudged,
        "outcome": verdict.outcome,
        "anomaly": verdict.anomaly,
        "anomaly_observed": verdict.anomaly_observed,
        "prevented": None if verdict.anomaly_observed is None else not verdict.anomaly_observed,
        "how": verdict.how,
        "prevented_by": (
            {"sqlstate": verdict.prevented_by.sqlstate, "message": verdict.prevented_by.message}
            if verdict.prevented_by
            else None
        ),
        "ended_early": verdict.ended_early,
        "could_not_run": verdict.could_not_run,
        "alternative": verdict.alternative,
        "findings": _findings(verdict.findings),
        "sqlstate_changes": [
            {"step": step, "expected": expected, "observed": observed}
            for step, expected, observed in verdict.sqlstate_changes
        ],
        "alternatives_missed": [
            {"name": name, "findings": _findings(findings)} for name, findings in verdict.alternatives_missed
        ],
    }


def place_to_dict(report: RunReport) -> dict[str, Any]:
    """Which of several permutations a run is: `permutation_number` (from 1) and
    `permutation_count`, both null for a run of the scenario's own single order."""
    number, count = report.place or (None, None)
    return {"permutation_number": number, "permutation_count": count}


def run_to_dict(report: RunReport) -> dict[str, Any]:
    """One run as `txnlab run --format json` prints it: its timeline, which permutation it is,
    its invariants' SQL and its verdict (`--repeat` adds its own keys to this). Its `level`, here
    and in the verdict, is null for a `.spec` run: txnlab sets none (see describe.level_label)."""
    return {
        **timeline_to_dict(report.timeline),
        "level": level_value(report),
        **place_to_dict(report),
        "invariant_sql": dict(report.scenario.invariants),
        "verdict": {**verdict_to_dict(report.verdict), "level": level_value(report)},
    }


def render_runs(reports: Sequence[RunReport]) -> str:
    """`txnlab run --format json`: every run's timeline and verdict."""
    document = {
        "schema_version": JSON_SCHEMA_VERSION,
        "runs": [run_to_dict(r) for r in reports],
    }
    return json.dumps(document, indent=2) + "\n"


def render_matrix(reports: Sequence[RunReport]) -> str:
    """`txnlab matrix --format json`: `{"schema_version": 2, "verdicts": [...]}`, one verdict
    per scenario, level and permutation run, each with its `permutation` (the steps in order)
    and place (see `place_to_dict`) (before schema_version existed, the bare list)."""
    document = {
        "schema_version": JSON_SCHEMA_VERSION,
        "verdicts": [
            {**verdict_to_dict(r.verdict), "level": level_value(r), "permutation": list(r.timeline.permutation),
             **place_to_dict(r)}
            for r in reports
        ],
    }
    return json.dumps(document, indent=2) + "\n"
