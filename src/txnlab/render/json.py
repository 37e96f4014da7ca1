"""JSON output, a stable documented schema (see README, "JSON output")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from txnlab.checks import Finding, Verdict
from txnlab.history.model import Analysis, DerivedAnomaly, Edge, Read, Transaction, UnrecordedRead, VersionRef
from txnlab.render.describe import level_value
from txnlab.render.derived import caveat_lines
from txnlab.render.report import RunReport
from txnlab.timeline import JSON_SCHEMA_VERSION, drivers_to_dict, timeline_to_dict


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
    its invariants' SQL, its verdict, its `history`, `derived_anomalies` and `history_gaps`
    (`--repeat` adds its
    own keys to this). Its `level`, here
    and in the verdict, is null for a `.spec` run: txnlab sets none (see describe.level_label)."""
    return {
        **timeline_to_dict(report.timeline),
        "level": level_value(report),
        **place_to_dict(report),
        "invariant_sql": dict(report.scenario.invariants),
        "verdict": {**verdict_to_dict(report.verdict), "level": level_value(report)},
        "history": history_to_dict(report.analysis),
        "derived_anomalies": derived_to_list(report.analysis),
        "history_gaps": gaps_to_list(report.analysis),
    }


def version_to_dict(version: VersionRef) -> dict[str, Any]:
    """One version of one object (docs/history.md, "JSON"): `object` as the words name it
    (`accounts[1]`), `table`, `key` (the primary key's values as the server's text), `number`
    (0: what the setup left), `row` (the whole row's values in the table's column order, null
    for no row: deleted, or not yet inserted), `writer` (a transaction id; null for the setup's),
    `step` and `seq` (the write's place in the trigger's log; null for the setup's)."""
    return {"object": version.object, "table": version.table, "key": list(version.key), "number": version.number,
            "row": None if version.row is None else list(version.row), "writer": version.writer,
            "step": version.step, "seq": version.seq}


def _version_ref(version: VersionRef) -> dict[str, Any]:
    return {"object": version.object, "number": version.number, "writer": version.writer}


def read_to_dict(read: Read) -> dict[str, Any]:
    """One row a step returned from one table: `step`, `event_seq`, `table`, `columns`, `values`,
    `by_key` (the row held the whole primary key), `match` (`matched`, `ambiguous` or
    `unmatched`), `version` (the one candidate, else null) and `candidates` (each `object`,
    `number`, `writer`)."""
    match = "matched" if len(read.candidates) == 1 else "ambiguous" if read.candidates else "unmatched"
    return {"step": read.step, "event_seq": read.event_seq, "table": read.table, "columns": list(read.columns),
            "values": list(read.values), "by_key": read.by_key, "match": match,
            "version": _version_ref(read.version) if read.version else None,
            "candidates": [_version_ref(v) for v in read.candidates]}


def _transaction_to_dict(transaction: Transaction, analysis: Analysis) -> dict[str, Any]:
    history = analysis.history
    return {
        "id": transaction.id, "session": transaction.session, "steps": list(transaction.steps),
        "outcome": transaction.outcome, "xid": transaction.xid,
        "reads": [read_to_dict(r) for r in history.reads if r.transaction == transaction.id],
        "predicate_reads": [
            {"step": p.step, "event_seq": p.event_seq, "table": p.table, "predicate": p.predicate,
             "returned": [list(key) for key in p.returned]}
            for p in history.predicate_reads if p.transaction == transaction.id
        ],
        "writes": [_version_ref(v) for v in history.versions if v.writer == transaction.id],
    }


def edge_to_dict(edge: Edge) -> dict[str, Any]:
    """A dependency edge: `from`, `to` (transaction ids), `kind` (ww, wr, rw), `object`,
    `predicate`, `inferred` (false only when every fact it rests on was observed exactly),
    `evidence` (words) and `steps` (the steps it rests on, in order)."""
    return {"from": edge.source, "to": edge.target, "kind": edge.kind, "object": edge.object,
            "predicate": edge.predicate, "inferred": edge.inferred, "evidence": edge.evidence,
            "steps": list(edge.steps)}


def history_to_dict(analysis: Analysis | None) -> dict[str, Any] | None:
    """A run's `history` (docs/history.md, "JSON"): `transactions` (each with its steps,
    outcome, reads, predicate reads and writes), `versions` (every version of every object,
    the setup's included), `edges` (the dependency graph), `gaps` (what was not observed) and
    `unrecorded_reads` (reads no record holds, see `unrecorded_to_dict`);
    null when the run recorded no history."""
    if analysis is None:
        return None
    history = analysis.history
    return {
        "transactions": [_transaction_to_dict(t, analysis) for t in history.transactions],
        "versions": [version_to_dict(v) for v in history.versions],
        "edges": [edge_to_dict(e) for e in analysis.edges],
        "gaps": list(history.gaps),
        "unrecorded_reads": [unrecorded_to_dict(u) for u in history.unrecorded],
    }


def anomaly_to_dict(anomaly: DerivedAnomaly) -> dict[str, Any]:
    """A derived anomaly: `name` (G0, G1a, G1b, G1c, G-single, G2-item, G2, lost update),
    `weakest_violated` (the weakest level that forbids it), `cycle` (`transactions` in order
    around the cycle, `edges`) and `explanation` (its sentences, one a line)."""
    return {"name": anomaly.name, "weakest_violated": anomaly.weakest_violated.value,
            "cycle": {"transactions": list(anomaly.transactions), "edges": [edge_to_dict(e) for e in anomaly.cycle]},
            "explanation": "\n".join(anomaly.explanation)}


def derived_to_list(analysis: Analysis | None) -> list[dict[str, Any]] | None:
    """A run's `derived_anomalies`: [] when its history is serializable as far as it was
    observed, null when it recorded no history."""
    return None if analysis is None else [anomaly_to_dict(a) for a in analysis.anomalies]


def gaps_to_list(analysis: Analysis | None) -> list[str] | None:
    """A run's `history_gaps`: what could hide a cycle from its history, one line each as the
    text view prints them (render.derived.caveat_lines: ambiguous and unmatched reads, reads
    not recorded, the capture's and the derivation's gaps); [] when nothing went unseen, so
    `derived_anomalies: []` with `history_gaps: []` is "serializable as far as it was observed"
    and with gaps it is only "no cycle among what was observed"; null when it recorded no history."""
    return None if analysis is None else caveat_lines(analysis)


def unrecorded_to_dict(read: UnrecordedRead) -> dict[str, Any]:
    """A read no record of the history holds (history/coverage.py): `transaction`, `step`,
    `table` (null: the whole step), `how` (words: "an aggregate", "a subquery"...)."""
    return {"transaction": read.transaction, "step": read.step, "table": read.table, "how": read.how}


def render_runs(reports: Sequence[RunReport]) -> str:
    """`txnlab run --format json`: every run's timeline and verdict."""
    document = {
        "schema_version": JSON_SCHEMA_VERSION,
        "runs": [run_to_dict(r) for r in reports],
    }
    return json.dumps(document, indent=2) + "\n"


def render_matrix(reports: Sequence[RunReport]) -> str:
    """`txnlab matrix --format json`: `{"schema_version": 2, "verdicts": [...]}`, one verdict
    per scenario, level and permutation run, each with its `permutation` (the steps in order),
    its `drivers` (as in run JSON: see timeline.drivers_to_dict) and place (see `place_to_dict`), its `derived_anomalies` (see `derived_to_list`) and its
    `history_gaps` (see `gaps_to_list`) (before schema_version existed, the bare list)."""
    document = {
        "schema_version": JSON_SCHEMA_VERSION,
        "verdicts": [
            {**verdict_to_dict(r.verdict), "level": level_value(r), "permutation": list(r.timeline.permutation),
             "drivers": drivers_to_dict(r.timeline), **place_to_dict(r), "derived_anomalies": derived_to_list(r.analysis),
             "history_gaps": gaps_to_list(r.analysis)}
            for r in reports
        ],
    }
    return json.dumps(document, indent=2) + "\n"
