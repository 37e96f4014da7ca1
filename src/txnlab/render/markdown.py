"""Markdown output for handouts and issue reports."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from txnlab.render.describe import anomaly_grid, driver_lines, matrix_grid, mismatch_lines, result_phrase, verdict_line
from txnlab.render.report import RunReport
from txnlab.timeline import Event


def _cell(event: Event) -> str:
    sql = " ".join(event.sql.split()).replace("|", "\\|")
    result = result_phrase(event).replace("|", "\\|")
    extra = "".join(f"<br>{line}".replace("|", "\\|") for line in driver_lines(event))
    if event.after_wait or not sql:  # a completion, or the server ending the session
        return f"*{result}*{extra}"
    return f"`{sql}`<br>→ {result}{extra}"


def render_timeline(report: RunReport) -> str:
    timeline = report.timeline
    rows = []
    for event in timeline.events:
        cells = [""] * len(timeline.sessions)
        cells[timeline.sessions.index(event.session)] = _cell(event)
        rows.append([str(event.seq), *cells])
    lines = [
        f"### {report.scenario.name} at {timeline.level.value.upper()}",
        "",
        f"PostgreSQL {timeline.server_version}. {report.scenario.title}.",
        "",
        tabulate(rows, headers=["#", *timeline.sessions], tablefmt="github", disable_numparse=True),
        "",
        f"**{verdict_line(report.verdict)}**",
    ]
    lines += [f"- {line}" for line in mismatch_lines(report.verdict)]
    return "\n".join(lines)


def render_runs(reports: Sequence[RunReport]) -> str:
    return "\n\n".join(render_timeline(r) for r in reports) + "\n"


def render_handout(reports: Sequence[RunReport]) -> str:
    """A Markdown handout: each scenario's explanation, then its runs."""
    parts: list[str] = []
    seen: set[str] = set()
    for report in reports:
        scenario = report.scenario
        if scenario.name not in seen:
            seen.add(scenario.name)
            references = "".join(f"\n- {ref}" for ref in scenario.references)
            parts.append(f"## {scenario.title}\n\n{' '.join(scenario.summary.split())}\n{references}")
        parts.append(render_timeline(report))
    return "\n\n".join(parts) + "\n"


def render_matrix(reports: Sequence[RunReport]) -> str:
    headers, rows = matrix_grid(reports, "", "(**unexpected**)")
    return tabulate(rows, headers=headers, tablefmt="github") + "\n"


def render_anomaly_table(reports: Sequence[RunReport]) -> str:
    headers, rows = anomaly_grid(reports, "(**unexpected**)")
    return tabulate(rows, headers=headers, tablefmt="github") + "\n"
