"""Markdown output for handouts and issue reports.

Everything that comes from a scenario file or from the server (titles, summaries, SQL,
values, error messages, names) is escaped: a scenario is other people's text, and a
Markdown page is often shown as HTML, so `<script>` must stay text and `|` must not
split a table cell. SQL goes in code spans, where HTML is not interpreted.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Sequence

from tabulate import tabulate

from txnlab.control_pictures import LAYOUT, pictured
from txnlab.render.describe import (
    drivers_phrase,
    runs_drivers_phrase,
    FINAL_STATE,
    MatrixCell,
    anomaly_grid,
    driver_lines,
    error_lines,
    final_state,
    grid_cells,
    matrix_grid,
    matrix_legend,
    mismatch_lines,
    notification_lines,
    permutation_phrase,
    result_phrases,
    row_label,
    run_title,
    sql_output_lines,
    level_label,
    verdict_line,
)
from txnlab.render.derived import HEADING, cell_label, derived, matrix_lines
from txnlab.render.report import RunReport
from txnlab.timeline import Event, Outcome

# Characters with a meaning in Markdown inline text (CommonMark and GitHub's tables).
_PUNCTUATION = re.compile(r"([\\`*_\[\]|~#!])")
# At the start of a line these would open a list, a quote or a heading underline; a
# backslash escapes only punctuation (CommonMark 2.4), so an ordered-list number keeps
# its digits and has its `.` or `)` escaped.
_LINE_START = re.compile(r"^(\d*)([-+>=.)])")


def inline(text: str) -> str:
    """Plain text as Markdown inline text that shows exactly that text, on one line:
    HTML escaped (`<` becomes `&lt;`), Markdown punctuation and `|` backslash-escaped,
    control characters shown as pictures (see txnlab.control_pictures)."""
    flat = " ".join(pictured(str(text), keep=LAYOUT).split())
    escaped = html.escape(_PUNCTUATION.sub(r"\\\1", flat), quote=False)
    return _LINE_START.sub(_escape_line_start, escaped)


def _escape_line_start(match: re.Match[str]) -> str:
    digits, marker = match.groups()
    if digits and marker not in ".)":
        return match.group(0)  # "18-" opens nothing
    return f"{digits}\\{marker}"


def code(text: str) -> str:
    """Text as a Markdown code span on one line, safe inside a table cell: the fence is one
    backtick longer than any run of backticks inside, and `|` is escaped (GitHub's rule)."""
    flat = " ".join(pictured(text, keep=LAYOUT).split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _cell(event: Event) -> str:
    result = "<br>→ ".join(inline(phrase) for phrase in result_phrases(event))  # each result of the step
    said = [*error_lines(event), *event.notices, *notification_lines(event), *driver_lines(event)]
    extra = "".join(f"<br>{inline(line)}" for line in said)
    # A completion, a changed wait, a notice read during a wait, an end: no SQL of its own.
    if event.after_wait or event.wait_changed or event.outcome is Outcome.NOTICE or not event.sql.strip():
        return f"*{result}*{extra}"
    shown = python_code(event.sql) if event.python else code(event.sql)
    return f"{shown}<br>→ {result}{extra}"


def python_code(text: str) -> str:
    """A Python step's code in a table cell, which holds no line breaks of its own: one code
    span per line, joined by `<br>`, each line's indentation (common indentation removed, a tab
    as 4) as non-breaking spaces before it, which a code span would trim."""
    lines = [line for line in textwrap.dedent(text.expandtabs(4)).splitlines() if line.strip()]
    return "<br>".join("&nbsp;" * (len(line) - len(line.lstrip(" "))) + code(line.strip()) for line in lines)


def render_timeline(report: RunReport) -> str:
    timeline = report.timeline
    rows = []
    for event in timeline.events:
        cells = [""] * len(timeline.sessions)
        cells[timeline.sessions.index(event.session)] = _cell(event)
        rows.append([str(event.seq), *cells])
    placed = permutation_phrase(report)
    lines = [
        f"### {inline(run_title(report))}",
        "",
        f"PostgreSQL {inline(timeline.server_version)}."
        + (f" {inline(report.scenario.title)}." if report.scenario.title != report.scenario.name else "")
        + (f" {inline(placed[:1].upper() + placed[1:])}." if placed else "")
        + (f" {inline(drivers[:1].upper() + drivers[1:])}." if (drivers := drivers_phrase(timeline)) else ""),
        "",
        *_sql_output("Before the steps", timeline.setup),
        tabulate(rows, headers=["#", *map(inline, timeline.sessions)], tablefmt="github", disable_numparse=True),
        "",
        *_sql_output("After the steps", timeline.teardown),
        *_final_state(report),
    ]
    if not (report.scenario.isolationtester and report.verdict.unjudged):  # a spec never has a verdict
        lines.append(f"**{inline(verdict_line(report.verdict))}**")
    lines += [f"- {inline(line)}" for line in mismatch_lines(report.verdict)]
    return "\n".join(lines + _derived(report))


def _derived(report: RunReport) -> list[str]:
    """After the verdict: the derived anomalies (render.derived), each its title in bold then
    its explanation, or the line saying there is no cycle; then the caveats, as a list."""
    said = derived(report)
    if said is None:
        return []
    lines = ["", f"{inline(HEADING)}", ""]
    for title, explanation in said.anomalies:
        lines += [f"- **{inline(title)}**", *(f"  - {inline(sentence)}" for sentence in explanation)]
    if not said.anomalies:
        lines.append(f"- {inline(said.no_cycle)}")
    return lines + [f"- {inline(line)}" for line in said.caveats]


def _sql_output(when: str, events: Sequence[Event]) -> list[str]:
    """What setup or teardown SQL returned (describe.sql_output_lines), as a list, then a blank line."""
    said = sql_output_lines(events)
    return [f"{when}:", "", *(f"- {inline(line)}" for line in said), ""] if said else []


def _final_state(report: RunReport) -> list[str]:
    """The final state as a list (then a blank line): `final:` results, then the invariants."""
    facts = final_state(report)
    if not facts:
        return []
    lines = [f"{inline(FINAL_STATE)}:", ""]
    for fact in facts:
        if fact.invariant is None:
            lines.append(f"- {code(fact.sql)} → {inline(fact.result)}")
        else:
            lines.append(f"- invariant {inline(fact.invariant)} **{inline(fact.result)}**: {code(fact.sql)}")
    return [*lines, ""]


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
            references = "".join(f"\n- {inline(ref)}" for ref in scenario.references)
            parts.append(f"## {inline(scenario.title)}\n\n{inline(scenario.summary)}\n{references}")
        parts.append(render_timeline(report))
    return "\n\n".join(parts) + "\n"


def render_matrix(reports: Sequence[RunReport]) -> str:
    """Scenarios by levels, with the same marks as the text matrix, their legend, and what differs."""
    headers, grid = matrix_grid(reports, escape=inline)
    drivers = runs_drivers_phrase([report.timeline for report in reports])
    return _grid(headers, grid, [*([drivers] if drivers else []), *matrix_legend(grid_cells(grid))], reports)


def render_anomaly_table(reports: Sequence[RunReport]) -> str:
    """Hermitage's table (levels by anomalies), its legend, and what differs."""
    headers, grid = anomaly_grid(reports, escape=inline)
    return _grid(headers, grid, matrix_legend(grid_cells(grid), hermitage=True), reports)


def _grid(
    headers: list[str], grid: list[list[str | MatrixCell]], legend: list[str], reports: Sequence[RunReport]
) -> str:
    rows = [[_matrix_cell(cell) for cell in row] for row in grid]
    lines = [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    lines += [f"- {inline(line)}" for line in legend]
    for report in reports:
        if report.verdict.differs:
            lines += ["", f"**{inline(row_label(report))} at {inline(level_label(report))}:**", ""]
            lines += [f"- {inline(line)}" for line in mismatch_lines(report.verdict)]
    if (cycles := matrix_lines(reports, cell_label)) is not None:
        heading, found = cycles
        lines += ["", inline(heading), "", *(f"- {inline(line)}" for line in found)]
    return "\n".join(lines) + "\n"


def _matrix_cell(cell: str | MatrixCell) -> str:
    """Marks as they are (✓ ✗ ⚠), what differs in bold; the words escaped."""
    if isinstance(cell, str):
        return cell
    detail = f"**{inline(cell.detail)}**" if cell.detail else ""
    return " ".join(part for part in (inline(cell.words), cell.mark, detail) if part)
