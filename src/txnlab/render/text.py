"""Plain-text timelines for the terminal: one column per session, one row per event."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import click
from tabulate import tabulate

from txnlab.render.describe import OUTCOME_MARKS, anomaly_grid, driver_lines, matrix_grid, mismatch_lines, result_phrase, verdict_line
from txnlab.render.report import RunReport
from txnlab.timeline import Event, Outcome

MIN_COLUMN = 24


class TextStyle:
    """Colour for terminals, nothing for pipes and NO_COLOR: the CLI decides which."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, **style: object) -> str:
        return click.style(text, **style) if self.color else text  # type: ignore[arg-type]

    def outcome(self, event: Event, text: str) -> str:
        if event.outcome is Outcome.BLOCKED:
            return self(text, fg="yellow", bold=True)
        if event.outcome in (Outcome.ERROR, Outcome.TIMEOUT):
            return self(text, fg="red", bold=True)
        return self(text, fg="green") if event.after_wait else text


def event_cell(event: Event, width: int, style: TextStyle, *, show_sql: bool = True) -> str:
    marker = OUTCOME_MARKS.get(event.outcome, "→") + " "
    if event.after_wait and event.outcome is Outcome.OK:
        marker = "↳ "
    lines = textwrap.wrap(" ".join(event.sql.split()), width) if show_sql and not event.after_wait else []
    lines += [style.outcome(event, line) for line in textwrap.wrap(marker + result_phrase(event), width)]
    if event.notices:
        lines += [style(line, fg="cyan") for n in event.notices for line in textwrap.wrap(n, width)]
    for line in driver_lines(event):
        lines += [style(part, fg="blue") for part in textwrap.wrap(line, width)]
    if event.transaction_status and event.outcome is not Outcome.BLOCKED:
        lines.append(style(f"[{event.transaction_status}]", dim=True))
    return "\n".join(lines)


def render_timeline(report: RunReport, *, width: int = 100, color: bool = False) -> str:
    style = TextStyle(color)
    timeline, verdict = report.timeline, report.verdict
    sessions: Sequence[str] = timeline.sessions
    column = max(MIN_COLUMN, (width - 6 - 3 * len(sessions)) // max(1, len(sessions)))
    rows = []
    for event in timeline.events:
        cells = [""] * len(sessions)
        cells[sessions.index(event.session)] = event_cell(event, column, style)
        rows.append([event.seq, *cells])
    header = style(
        f"{report.scenario.name} at {timeline.level.value.upper()} "
        f"(PostgreSQL {timeline.server_version}, {timeline.duration * 1000:.1f} ms)",
        bold=True,
    )
    table = tabulate(rows, headers=["#", *sessions], tablefmt="simple_grid", disable_numparse=True)
    lines = [header, table]
    status_color = "green" if verdict.matches_expectation else "red"
    lines.append(style(verdict_line(verdict), fg=status_color, bold=True))
    lines += [style(f"  {line}", fg="red") for line in mismatch_lines(verdict)]
    return "\n".join(lines)


def render_runs(reports: Sequence[RunReport], *, width: int = 100, color: bool = False) -> str:
    """Each run's timeline, then a summary when several runs were made."""
    parts = [render_timeline(r, width=width, color=color) for r in reports]
    if len(reports) > 1:
        parts.append(render_summary(reports, color=color))
    return "\n\n".join(parts) + "\n"


def render_summary(reports: Sequence[RunReport], *, color: bool = False) -> str:
    style = TextStyle(color)
    rows = []
    for report in reports:
        verdict = report.verdict
        mark = style("yes", fg="green") if verdict.matches_expectation else style("NO", fg="red", bold=True)
        rows.append([report.scenario.name, verdict.level.value, verdict.outcome, mark])
    return tabulate(rows, headers=["scenario", "level", "outcome", "as expected"], tablefmt="simple")


def render_matrix(reports: Sequence[RunReport], *, color: bool = False) -> str:
    style = TextStyle(color)
    headers, rows = matrix_grid(reports, style("✓", fg="green"), style("✗ unexpected", fg="red", bold=True))
    table = tabulate(rows, headers=headers, tablefmt="simple_grid")
    unexpected = [r for r in reports if not r.verdict.matches_expectation]
    lines = [table, "✓: PostgreSQL did what the scenario says it does at that level."]
    for report in unexpected:
        lines.append(style(f"{report.scenario.name} at {report.verdict.level.value}:", fg="red", bold=True))
        lines += [f"  {line}" for line in mismatch_lines(report.verdict)]
    return "\n".join(lines) + "\n"


def render_anomaly_table(reports: Sequence[RunReport], *, color: bool = False) -> str:
    """The Hermitage-style table: possible, prevented, blocks (prevented by waiting), aborts."""
    style = TextStyle(color)
    headers, rows = anomaly_grid(reports, style("✗", fg="red", bold=True))
    lines = [tabulate(rows, headers=headers, tablefmt="simple_grid")]
    lines.append(
        "possible: the anomaly happened; prevented: it did not; blocks / aborts: it was prevented "
        "by making a session wait / by failing a transaction. ✗ marks a cell that differs from "
        "the expectation."
    )
    for report in reports:
        if not report.verdict.matches_expectation:
            lines.append(style(f"{report.scenario.name} at {report.verdict.level.value}:", fg="red", bold=True))
            lines += [f"  {line}" for line in mismatch_lines(report.verdict)]
    return "\n".join(lines) + "\n"


def wait_diagnosis(event: Event) -> str | None:
    """Who waits for whom, and for which lock, in the scenario's session names."""
    if event.outcome is not Outcome.BLOCKED:
        return None
    who = ", ".join(event.blocked_by) or "another session"
    lock = event.lock
    if lock is None or lock.locktype is None:
        return f"{event.session} waits for {who} to finish: a SERIALIZABLE READ ONLY DEFERRABLE reader waits for a safe snapshot"
    target = lock.relation or lock.locktype
    meaning = {
        "transactionid": "a row lock: it waits for that transaction to commit or roll back",
        "relation": "a table lock",
        "tuple": "a row lock, queued behind another waiter",
        "advisory": "an advisory lock",
    }.get(lock.locktype, lock.locktype)
    return f"{event.session} waits for {who}: {lock.mode} on {target} ({meaning})"


def predicate_locks(event: Event) -> list[str]:
    """SSI's SIRead locks held after a step: they record reads and block nobody."""
    held = [lock for view in event.server for lock in view.locks if lock.startswith("SIReadLock")]
    return [f"{event.session} holds {', '.join(held)} (SSI predicate locks: they block nobody)"] if held else []


def render_step_events(events: Sequence[Event], *, width: int = 100, style: TextStyle | None = None) -> str:
    """What one workshop step produced: each event, the waits it caused and the locks behind them."""
    style = style or TextStyle(False)
    lines = []
    for event in events:
        cell = event_cell(event, width - len(event.session) - 2, style, show_sql=False)
        first, *rest = cell.splitlines() or [""]
        lines.append(f"{style(event.session, bold=True)}: {first}")
        lines += [" " * (len(event.session) + 2) + line for line in rest]
        diagnosis = wait_diagnosis(event)
        if diagnosis:
            lines.append(style(f"  lock: {diagnosis}", fg="yellow"))
        lines += [style(f"  {line}", fg="magenta") for line in predicate_locks(event)]
    return "\n".join(lines)
