"""Plain-text timelines for the terminal: one column per session, one row per event."""

from __future__ import annotations

from collections.abc import Sequence

import click
from tabulate import tabulate

from txnlab.levels import Level
from txnlab.render.describe import (
    drivers_phrase,
    runs_drivers_phrase,
    MARK_AS_EXPECTED,
    OUTCOME_MARKS,
    FINAL_STATE,
    MatrixCell,
    anomaly_grid,
    driver_lines,
    error_lines,
    final_state,
    grid_cells,
    level_label,
    lock_meaning,
    lock_phrase,
    matrix_grid,
    matrix_legend,
    mismatch_lines,
    notification_lines,
    permutation_phrase,
    result_phrases,
    row_label,
    run_title,
    sql_output_lines,
    verdict_line,
)
from txnlab.render.derived import HEADING, cell_label, derived, matrix_lines
from txnlab.render.fit import code_lines, display_width, fit_table, wrap, wrap_sql
from txnlab.render.report import RunReport
from txnlab.timeline import SETUP_FAILED, Event, Outcome

# The narrowest session column of a timeline: four sessions still fit 80 columns.
MIN_COLUMN = 12
DEFAULT_WIDTH = 100

LEVEL_LEGEND = "levels: " + ", ".join(f"{level.short} = {level.value}" for level in Level)


class TextStyle:
    """Colour for terminals, nothing for pipes and NO_COLOR: the CLI decides which."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, **style: object) -> str:
        return click.style(text, **style) if self.color else text  # type: ignore[arg-type]

    def outcome(self, event: Event, text: str) -> str:
        if event.outcome is Outcome.BLOCKED:
            return self(text, fg="yellow", bold=True)
        if event.outcome in (Outcome.ERROR, Outcome.TIMEOUT) or event.rolled_back:
            return self(text, fg="red", bold=True)
        return self(text, fg="green") if event.after_wait else text


def event_cell(event: Event, width: int, style: TextStyle, *, show_sql: bool = True) -> str:
    marker = OUTCOME_MARKS.get(event.outcome, "→") + " "
    if event.after_wait and event.outcome is Outcome.OK:
        marker = "↳ "
    # A completion, a changed wait or a notice read during a wait repeats no SQL.
    first = not event.after_wait and not event.wait_changed and event.outcome is not Outcome.NOTICE
    shown = code_lines(event.sql, width) if event.python else wrap_sql(event.sql, width)  # code keeps its layout
    lines = shown if show_sql and first and event.sql.strip() else []
    for index, phrase in enumerate(result_phrases(event)):  # a step that sent several statements: each result
        lines += [style.outcome(event, line) for line in wrap_sql((marker if index == 0 else "→ ") + phrase, width)]
    lines += [style(part, fg="red") for line in error_lines(event) for part in wrap(line, width, indent="  ")]
    if event.notices:
        lines += [style(line, fg="cyan") for n in event.notices for line in wrap(n, width)]
    lines += [style(line, fg="magenta") for n in notification_lines(event) for line in wrap(n, width)]
    for line in driver_lines(event):
        lines += [style(part, fg="blue") for part in wrap_sql(line, width)]
    if event.transaction_status and event.outcome not in (Outcome.BLOCKED, Outcome.NOTICE):  # mid-step: none yet
        lines.append(style(f"[{event.transaction_status}]", dim=True))
    return "\n".join(lines)


def render_timeline(report: RunReport, *, width: int = DEFAULT_WIDTH, color: bool = False) -> str:
    """A run as a table no wider than `width` display columns: one column per session, or,
    when the sessions cannot each get MIN_COLUMN columns, one row per event naming its session."""
    style = TextStyle(color)
    timeline, verdict = report.timeline, report.verdict
    table = _session_columns(timeline.events, shown_sessions(report), width, style)
    if table is None:
        table = _event_rows(timeline.events, width, style)
    header = f"{run_title(report)} (PostgreSQL {timeline.server_version}, {timeline.duration * 1000:.1f} ms)"
    lines = [style(line, bold=True) for line in wrap(header, width)]
    placed = permutation_phrase(report)
    lines += [style(line, bold=True) for line in wrap(placed, width)] if placed else []
    drivers = drivers_phrase(timeline)
    lines += wrap(drivers, width) if drivers else []
    lines += _sql_output("before the steps", timeline.setup, width)
    lines += [table] if timeline.events else []  # a failed setup ran no step: no empty frame
    lines += _sql_output("after the steps", timeline.teardown, width)
    lines += final_state_lines(report, width, style)
    if verdict.unjudged is None:
        status_color = "green" if verdict.matches_expectation else "red"
        lines += [style(line, fg=status_color, bold=True) for line in wrap(verdict_line(verdict), width)]
    elif not report.scenario.isolationtester and not report.scenario.interleaving:
        # a spec never has one, nor an interleaving (its test asserts): saying so on every run is noise
        lines += wrap(verdict_line(verdict), width)  # normal intensity: dim is unreadable on a projector
    lines += _mismatches(mismatch_lines(verdict), width, style)
    lines += derived_lines(report, width, style)
    return "\n".join(lines)


def derived_lines(report: RunReport, width: int, style: TextStyle) -> list[str]:
    """After the verdict: the anomalies derived from the run's history (see render.derived),
    each its title in bold then its explanation indented, or the line saying there is no
    cycle; then what the history could not place, dimmed never: a projector must show it."""
    said = derived(report)
    if said is None:
        return []
    lines = [style(line, bold=True) for line in wrap(HEADING, width)]
    for title, explanation in said.anomalies:
        lines += [style(line, fg="red", bold=True) for line in wrap(title, width, indent="  ")]
        lines += [part for sentence in explanation for part in wrap(sentence, width, indent="    ")]
    if not said.anomalies:
        lines += [style(line, fg="green") for line in wrap(said.no_cycle, width, indent="  ")]
    lines += [style(part, fg="yellow") for line in said.caveats for part in wrap(line, width, indent="  ")]
    return lines


def _session_columns(events: Sequence[Event], sessions: Sequence[str], width: int, style: TextStyle) -> str | None:
    """The timeline as one column per session, narrowed to `width` display columns; None
    when it cannot fit with each session's column at least MIN_COLUMN wide."""
    column = max(MIN_COLUMN, (width - 6 - 3 * len(sessions)) // max(1, len(sessions)))
    while True:  # the first guess misses by the width of the # column at most
        rows = []
        for event in events:
            cells = [""] * len(sessions)
            cells[sessions.index(event.session)] = event_cell(event, column, style)
            rows.append([str(event.seq), *cells])
        table = tabulate(rows, headers=["#", *sessions], tablefmt="simple_grid", disable_numparse=True)
        excess = display_width(table) - width
        if excess <= 0:
            return table
        if column <= MIN_COLUMN:
            return None
        column = max(MIN_COLUMN, column - -(-excess // len(sessions)))


def _event_rows(events: Sequence[Event], width: int, style: TextStyle) -> str:
    """The timeline as one row per event: its number, its session, then what it did, in a
    column as wide as `width` leaves (for many sessions on a narrow terminal)."""
    cell = max(MIN_COLUMN, width - 17)  # "│ # │ s1 │ " and " │": narrowed below if the columns are wider
    while True:
        rows = [[str(event.seq), event.session, event_cell(event, cell, style)] for event in events]
        table = tabulate(rows, headers=["#", "session", "what happens"], tablefmt="simple_grid",
                         disable_numparse=True)
        excess = display_width(table) - width
        if excess <= 0 or cell <= MIN_COLUMN:
            return table
        cell = max(MIN_COLUMN, cell - excess)


def _sql_output(when: str, events: Sequence[Event], width: int) -> list[str]:
    """What setup or teardown SQL returned (see describe.sql_output_lines), under a heading."""
    said = sql_output_lines(events)
    return [f"{when}:"] + [part for line in said for part in wrap(line, width, indent="  ")] if said else []


def shown_sessions(report: RunReport) -> tuple[str, ...]:
    """The sessions to give a column: all of them, except in one of several permutations (a
    `.spec`'s, `--permutations`), where a session with no step in it would be an empty column."""
    timeline = report.timeline
    if report.place is None:
        return timeline.sessions
    acting = {event.session for event in timeline.events}
    return tuple(name for name in timeline.sessions if name in acting) or timeline.sessions


def final_state_lines(report: RunReport, width: int, style: TextStyle) -> list[str]:
    """The final state: each `final:` query then its result (as in a timeline cell), each
    invariant with whether it held, then its SQL."""
    facts = final_state(report)
    lines = [style(FINAL_STATE + ":", bold=True)] if facts else []
    for fact in facts:
        if fact.invariant is None:
            lines += wrap(fact.sql, width, indent="  ") + wrap(f"→ {fact.result}", width, indent="  ")
            continue
        color = {"holds": "green", "broken": "red"}.get(fact.result, "yellow")
        said = f"invariant {fact.invariant}: {fact.result}"
        lines += [style(line, fg=color) for line in wrap(said, width, indent="  ")]
        lines += wrap(fact.sql, width, indent="    ")
    return lines


def _mismatches(lines: Sequence[str], width: int, style: TextStyle) -> list[str]:
    """What differs from the expectation, indented and wrapped, in red."""
    return [style(part, fg="red") for line in lines for part in wrap(line, width, indent="  ")]


def render_runs(reports: Sequence[RunReport], *, width: int = DEFAULT_WIDTH, color: bool = False) -> str:
    """Each run's timeline, then a summary when several runs were made."""
    parts = [render_timeline(r, width=width, color=color) for r in reports]
    if len(reports) > 1:
        parts.append(render_summary(reports, width=width, color=color))
    return "\n\n".join(parts) + "\n"


def render_summary(reports: Sequence[RunReport], *, width: int = DEFAULT_WIDTH, color: bool = False) -> str:
    """One line per run: scenario, level, outcome, and whether it was as expected. The runs
    no expectation applies to (other permutations, a `.spec`'s) are counted in one line per
    scenario and level: how many ran, how many timed out, failed their setup or could not run."""
    style = TextStyle(color)
    rows = []
    unjudged: dict[tuple[str, str], list[RunReport]] = {}
    for report in reports:
        verdict = report.verdict
        if verdict.unjudged is not None:
            unjudged.setdefault((report.scenario.name, level_label(report)), []).append(report)
            continue
        mark = style("yes", fg="green") if verdict.matches_expectation else style("NO", fg="red", bold=True)
        rows.append([row_label(report), verdict.level.value, verdict.outcome, mark])
    for (name, level), runs in unjudged.items():
        counts = [f"{len(runs)} run{'s' if len(runs) != 1 else ''}"]
        for outcome in ("timed out", SETUP_FAILED, "could not run"):
            if (count := sum(r.verdict.outcome == outcome for r in runs)):
                counts.append(f"{count} {outcome}")
        rows.append([name, level, ", ".join(counts), "no expectation"])
    return fit_table(rows, ["scenario", "level", "outcome", "as expected"], width=width, tablefmt="simple")


def _natural_width(rows: Sequence[Sequence[str]], headers: Sequence[str], tablefmt: str) -> int:
    """How wide the table is with no cell wrapped."""
    return display_width(tabulate(rows, headers=list(headers), tablefmt=tablefmt, disable_numparse=True))


def render_matrix(reports: Sequence[RunReport], *, width: int = DEFAULT_WIDTH, color: bool = False) -> str:
    """Scenarios by levels. When the full level names do not fit, the compact layout for
    projectors: levels abbreviated (ru, rc, rr, ser, with a legend), cells wrapped."""
    style = TextStyle(color)
    headers, grid = matrix_grid(reports)
    rows = [[_matrix_cell(cell, style) for cell in row] for row in grid]
    notes = matrix_legend(grid_cells(grid))
    if _natural_width(rows, headers, "simple_grid") > width:
        headers = [headers[0], *(Level(name).short for name in headers[1:])]
        notes.append(LEVEL_LEGEND)
    lines = [fit_table(rows, headers, width=width, tablefmt="simple_grid")]
    drivers = runs_drivers_phrase([report.timeline for report in reports])
    lines += wrap(drivers, width) if drivers else []
    lines += [part for note in notes for part in wrap(note, width)]
    lines += _unexpected(reports, width, style)
    lines += _cycle_lines(reports, width)
    return "\n".join(lines) + "\n"


def _cycle_lines(reports: Sequence[RunReport], width: int) -> list[str]:
    """Under a matrix: the derived cycles' heading, then one line per anomaly, indented."""
    said = matrix_lines(reports, cell_label)
    if said is None:
        return []
    heading, lines = said
    return wrap(heading, width) + [part for line in lines for part in wrap(line, width, indent="  ")]


def _matrix_cell(cell: str | MatrixCell, style: TextStyle) -> str:
    """A matrix cell in colour: ✓ green, ✗ and what differs red, ⚠ red."""
    if isinstance(cell, str):
        return cell
    color = "green" if cell.mark == MARK_AS_EXPECTED else "red"
    marked = [style(part, fg=color, bold=color == "red") for part in (cell.mark, cell.detail) if part]
    return " ".join([cell.words, *marked])


def _unexpected(reports: Sequence[RunReport], width: int, style: TextStyle) -> list[str]:
    """For each run that differs from its expectation: which, and how."""
    lines = []
    for report in reports:
        if report.verdict.differs:
            title = f"{row_label(report)} at {level_label(report)}:"
            lines += [style(line, fg="red", bold=True) for line in wrap(title, width)]
            lines += [part for line in mismatch_lines(report.verdict) for part in wrap(line, width, indent="  ")]
    return lines


def render_anomaly_table(reports: Sequence[RunReport], *, width: int = DEFAULT_WIDTH, color: bool = False) -> str:
    """The Hermitage-style table: possible, prevented, blocks (prevented by waiting), aborts.

    Levels are rows and anomalies columns, as in Hermitage; when that is wider than
    `width`, the compact layout: anomalies as rows, levels abbreviated as columns.
    """
    style = TextStyle(color)
    headers, grid = anomaly_grid(reports)
    rows = [[_matrix_cell(cell, style) for cell in row] for row in grid]
    notes = matrix_legend(grid_cells(grid), hermitage=True)
    if _natural_width(rows, headers, "simple_grid") > width:
        columns = [[header, *(row[index] for row in rows)] for index, header in enumerate(headers)]
        headers = ["anomaly", *(Level(level).short for level in columns[0][1:])]
        rows = columns[1:]
        notes.append(LEVEL_LEGEND)
    lines = [fit_table(rows, headers, width=width, tablefmt="simple_grid")]
    drivers = runs_drivers_phrase([report.timeline for report in reports])
    lines += wrap(drivers, width) if drivers else []
    lines += [part for note in notes for part in wrap(note, width)]
    lines += _unexpected(reports, width, style)
    lines += _cycle_lines(reports, width)
    return "\n".join(lines) + "\n"


def wait_diagnosis(event: Event) -> str | None:
    """Who waits for whom, and for which lock, in the scenario's session names and in words."""
    if event.outcome is not Outcome.BLOCKED:
        return None
    who = ", ".join(event.blocked_by) or "another session"
    waits = f"{event.session} {'now ' if event.wait_changed else ''}waits for {who}"
    if event.lock is None:
        return waits
    return f"{waits}: {lock_phrase(event.lock)} ({lock_meaning(event.lock)})"


def predicate_locks(event: Event) -> list[str]:
    """SSI's SIRead locks held after a step: they record reads and block nobody."""
    held = [lock for view in event.server or () for lock in view.locks if lock.startswith("SIReadLock")]
    return [f"{event.session} holds {', '.join(held)} (SSI predicate locks: they block nobody)"] if held else []


def render_step_events(events: Sequence[Event], *, width: int = DEFAULT_WIDTH, style: TextStyle | None = None) -> str:
    """What one workshop step produced: each event, the waits it caused and the locks behind them,
    wrapped to `width` display columns."""
    style = style or TextStyle(False)
    lines = []
    for event in events:
        margin = display_width(event.session) + 2
        cell = event_cell(event, max(MIN_COLUMN, width - margin), style, show_sql=False)
        first, *rest = cell.splitlines() or [""]
        lines.append(f"{style(event.session, bold=True)}: {first}")
        lines += [" " * margin + line for line in rest]
        diagnosis = wait_diagnosis(event)
        if diagnosis:
            lines += [style(line, fg="yellow") for line in wrap(f"lock: {diagnosis}", width, indent="  ")]
        lines += [style(part, fg="magenta") for line in predicate_locks(event) for part in wrap(line, width, indent="  ")]
    return "\n".join(lines)
