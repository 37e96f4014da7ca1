"""Words for events and verdicts, shared by the text, Markdown and HTML renderers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from txnlab.checks import Finding, Verdict
from txnlab.levels import Level
from txnlab.timeline import ErrorInfo, Event, Outcome

if TYPE_CHECKING:
    from txnlab.render.report import RunReport

MAX_ROWS_SHOWN = 4

# One mark per outcome that needs attention, shared by every renderer (single-width glyphs,
# so terminal tables stay aligned; shapes as well as colours, for colour-blind readers).
OUTCOME_MARKS = {
    Outcome.BLOCKED: "◷", Outcome.ERROR: "✗", Outcome.TIMEOUT: "⚠", Outcome.SKIPPED: "∅", Outcome.ENDED: "⊘"
}


def result_phrase(event: Event) -> str:
    """What a step's result looks like in a timeline cell: rows, a row count, an error, a wait."""
    if event.outcome is Outcome.BLOCKED:
        lock = event.lock
        waits_for = ", ".join(event.blocked_by) or "another session"
        detail = f" ({lock.mode} on {lock.relation or lock.locktype})" if lock and lock.mode else ""
        if lock and lock.locktype is None:
            detail = " (a safe snapshot)"
        return f"waits for {waits_for}{detail}"
    if event.outcome is Outcome.SKIPPED:
        return f"not sent: {event.error.message if event.error else 'a value it needs is missing'}"
    if event.outcome is Outcome.ENDED:
        return "the server ended the session" + (f": {error_phrase(event.error)}" if event.error else "")
    prefix = "completed after the wait: " if event.after_wait else ""
    if event.outcome is Outcome.TIMEOUT:
        return f"{prefix}cancelled after the step timeout"
    if event.error is not None:
        return f"{prefix}ERROR {error_phrase(event.error)}"
    if event.rows is not None:
        return prefix + rows_phrase(event.columns or (), event.rows)
    if event.rowcount is not None and event.rowcount >= 0:
        return f"{prefix}{event.rowcount} row{'s' if event.rowcount != 1 else ''} affected"
    return prefix + "ok"


def error_phrase(error: ErrorInfo) -> str:
    return (f"{error.sqlstate} " if error.sqlstate else "") + error.message


def driver_lines(event: Event) -> list[str]:
    """For capture scenarios: what the driver sent, and the server's view afterwards."""
    lines = [f"sent: {' ; '.join(' '.join(m.split()) for m in event.sent)}"] if event.sent else []
    for view in event.server:
        holds = f", holds {', '.join(view.locks)}" if view.locks else ""
        who = "server" if view.label == "this session" else f"server, {view.label}"
        lines.append(f"{who}: {view.state or 'unknown'}{holds}")
    return lines


def rows_phrase(columns: tuple[str, ...], rows: tuple[tuple[Any, ...], ...]) -> str:
    if not rows:
        return "no rows"
    if len(columns) == 1 and len(rows) == 1:
        return f"{columns[0]} = {rows[0][0]!r}" if isinstance(rows[0][0], str) else f"{columns[0]} = {rows[0][0]}"
    shown = [
        "(" + ", ".join(f"{c}={v!r}" if isinstance(v, str) else f"{c}={v}" for c, v in zip(columns, row)) + ")"
        for row in rows[:MAX_ROWS_SHOWN]
    ]
    more = f" +{len(rows) - MAX_ROWS_SHOWN} more" if len(rows) > MAX_ROWS_SHOWN else ""
    return " ".join(shown) + more


def verdict_line(verdict: Verdict) -> str:
    """One line: does the run match its expectation, and what happened to the anomaly."""
    status = "as expected" if verdict.matches_expectation else "DIFFERS from the expectation"
    if verdict.matches_expectation and verdict.alternative:
        status = f"as expected (accepted alternative {verdict.alternative})"
    if verdict.could_not_run:
        status = "could not run on this server"
    parts = [f"{verdict.level.value}: {status}"]
    if verdict.anomaly is not None and verdict.anomaly_observed is not None:
        if verdict.anomaly_observed:
            parts.append(f"{verdict.anomaly} happens")
        else:
            parts.append(f"{verdict.anomaly} prevented" + (f" ({verdict.how})" if verdict.how else ""))
    if verdict.note:
        parts.append(verdict.note)
    return " — ".join(parts)


def mismatch_lines(verdict: Verdict) -> list[str]:
    lines = [_differs(f) for f in verdict.mismatches]
    for name, findings in verdict.alternatives_missed:
        lines.append(f"accepted alternative {name} differs too: " + "; ".join(map(_differs, findings)))
    if verdict.ended_early:
        lines.append(f"the run ended early: {verdict.ended_early}")
    if verdict.could_not_run:
        lines.append(f"could not run: {verdict.could_not_run}")
    return lines


def _differs(finding: Finding) -> str:
    return f"{finding.subject}: expected {finding.expected}, observed {finding.observed}"


def _as_is(text: str) -> str:
    return text


def matrix_grid(
    reports: Sequence[RunReport], ok_mark: str, bad_mark: str, escape: Callable[[str], str] = _as_is
) -> tuple[list[str], list[list[str]]]:
    """Scenario rows by level columns; each cell the observed outcome and whether it was expected.
    `escape` is applied to every word that comes from a scenario (Markdown needs it)."""
    levels = [level for level in Level if any(r.verdict.level is level for r in reports)]
    by_scenario: dict[str, dict[Level, Verdict]] = {}
    for report in reports:
        by_scenario.setdefault(report.scenario.name, {})[report.verdict.level] = report.verdict
    rows = []
    for name, verdicts in by_scenario.items():
        row = [escape(name)]
        for level in levels:
            verdict = verdicts.get(level)
            if verdict is None:
                row.append("-")
            elif verdict.could_not_run is not None:  # nothing happened to judge: no mark
                row.append(escape(verdict.outcome))
            else:
                row.append(f"{escape(verdict.outcome)} {ok_mark if verdict.matches_expectation else bad_mark}")
        rows.append(row)
    return ["scenario", *(level.value for level in levels)], rows


def anomaly_cell(verdict: Verdict) -> str:
    """Hermitage's words: the anomaly is possible, or prevented (by blocking or by aborting)."""
    if verdict.anomaly_observed is None:
        return "-"
    if verdict.anomaly_observed:
        return "possible"
    return {"blocked": "blocks", "aborted": "aborts"}.get(verdict.how or "", "prevented")


def anomaly_grid(
    reports: Sequence[RunReport], bad_mark: str, escape: Callable[[str], str] = _as_is
) -> tuple[list[str], list[list[str]]]:
    """Levels as rows, anomalies as columns, as in Hermitage's table, derived from the runs.
    `escape` is applied to the anomaly names, which come from the scenarios."""
    anomalies = list(dict.fromkeys(r.verdict.anomaly or r.scenario.name for r in reports))
    cells = {(r.verdict.level, r.verdict.anomaly or r.scenario.name): r.verdict for r in reports}
    rows = []
    for level in Level:
        if not any(key[0] is level for key in cells):
            continue
        row = [level.value]
        for anomaly in anomalies:
            verdict = cells.get((level, anomaly))
            if verdict is None:
                row.append("-")
            elif verdict.could_not_run is not None:
                row.append("could not run")
            else:
                row.append(anomaly_cell(verdict) + ("" if verdict.matches_expectation else f" {bad_mark}"))
        rows.append(row)
    return ["level", *map(escape, anomalies)], rows
