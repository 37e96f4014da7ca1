"""A self-contained HTML page for workshop handouts: swimlane timelines, verdicts, narration.

The page loads nothing: the CSS is inline, the timelines are inline SVG, there is no
script, and a Content-Security-Policy meta tag makes the browser refuse any load.
Results and verdicts are worded by `describe`, as in the text and Markdown output.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import re
import textwrap
from collections.abc import Sequence

from txnlab.checks import Verdict
from txnlab.render.describe import (
    drivers_phrase,
    FINAL_STATE,
    MARK_DIFFERS,
    MARK_TIMED_OUT,
    NOT_RUN,
    OUTCOME_MARKS,
    MatrixCell,
    driver_lines,
    error_lines,
    final_state,
    grid_cells,
    matrix_grid,
    matrix_legend,
    plain_cell,
    mismatch_lines,
    notification_lines,
    permutation_phrase,
    result_phrase,
    result_phrases,
    row_label,
    run_title,
    sql_output_lines,
    level_label,
    verdict_line,
)
from txnlab.render.cycles import CSS as CYCLES_CSS, derived_section
from txnlab.render.markup import escape
from txnlab.render.report import RunReport
from txnlab.scenario.model import Scenario
from txnlab.timeline import Event, Outcome, Timeline


# The swimlane's geometry, in SVG units (1 unit = 1 CSS pixel at full width).
LABELS = 150  # the session names on the left
PLOT = 1030  # the time axis at its narrowest
LANE = 86  # one session's lane: a callout row, the bar, a callout row
BAR = 34
BAR_TOP = 24  # the bar's offset inside its lane
GAP = 44  # room for every stretch of time in which a step runs or waits (see TimeScale)
IDLE = 10  # room for a stretch in which no step runs
CAP = 34  # the completion of a step that waited: a block at the end of its wait
CHAR = 9.6  # a character's width at 15px (DejaVu Sans, a wide font), to decide whether a label fits
AXIS = 44



def render_report(reports: Sequence[RunReport], title: str, sections: Sequence[str] = ()) -> str:
    """One HTML page: for each scenario its description, then each run's timeline and verdict;
    then `sections`, HTML made elsewhere (the drivers table: txnlab.drivers_table.render)."""
    by_scenario: dict[str, list[RunReport]] = {}
    for report in reports:
        by_scenario.setdefault(report.scenario.name, []).append(report)
    versions = ", ".join(sorted({r.timeline.server_version for r in reports}))
    body = [
        f"<header><h1>{escape(title)}</h1>",
        f'<p class="meta">PostgreSQL {escape(versions or "-")}: every run below happened on a real server.</p>',
        _contents(reports),
        _legend(),
        "</header>",
        *(_scenario_section(runs[0].scenario, runs) for runs in by_scenario.values()),
        *sections,
    ]
    return PAGE.format(title=escape(title), csp=CSP, css=CSS + CYCLES_CSS, defs=DEFS, body="\n".join(body))


# -- the page's parts -------------------------------------------------------------------


def _contents(reports: Sequence[RunReport]) -> str:
    """The matrix of runs, each cell linking to its run: the observed outcome, ✓ or ✗."""
    headers, rows = matrix_grid(reports)
    scenario_of = {row_label(r): r.scenario.name for r in reports}  # a row per permutation, when several ran
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = []
    for name, *cells in rows:
        linked = [f'<td><a href="#{_anchor(scenario_of[str(name)])}">{escape(str(name))}</a></td>']
        for level, cell in zip(headers[1:], cells):
            css = "bad" if isinstance(cell, MatrixCell) and cell.judged and cell.mark in (MARK_DIFFERS, MARK_TIMED_OUT) else ""
            shown = escape(plain_cell(cell))
            text = shown if cell is NOT_RUN else f'<a href="#{_anchor(str(name), level)}">{shown}</a>'
            linked.append(f'<td class="{css}">{text}</td>')
        lines.append(f"<tr>{''.join(linked)}</tr>")
    legend = "".join(f"<li>{escape(line)}</li>" for line in matrix_legend(grid_cells(rows)))
    return f'<table class="contents"><tr>{head}</tr>{"".join(lines)}</table><ul class="marks">{legend}</ul>'


def _scenario_section(scenario: Scenario, runs: Sequence[RunReport]) -> str:
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", scenario.summary) if p.strip()]
    references = "".join(f"<li>{_reference(ref)}</li>" for ref in scenario.references)
    tags = f" · {', '.join(scenario.tags)}" if scenario.tags else ""
    return "\n".join(
        [
            f'<section class="scenario" id="{_anchor(scenario.name)}">',
            f"<h2>{escape(scenario.title)}</h2>",
            f'<p class="meta"><code>{escape(scenario.name)}</code>{escape(tags)}</p>'
            if scenario.title != scenario.name or tags else "",  # a .spec's title is its name: once is enough
            *(f"<p>{escape(p)}</p>" for p in paragraphs),
            f'<ul class="references">{references}</ul>' if references else "",
            *(_run_section(run) for run in runs),
            "</section>",
        ]
    )


def _reference(ref: str) -> str:
    """A plain link for a web address; anything else (a book, a blog post) as text."""
    if re.match(r"https?://", ref):
        return f'<a href="{escape(ref)}" rel="noreferrer">{escape(ref)}</a>'
    return escape(ref)


def _run_anchor(report: RunReport) -> str:
    """The run's id in the page, which the contents table links to (a row per permutation)."""
    return _anchor(row_label(report), level_label(report))


def _run_section(report: RunReport) -> str:
    timeline = report.timeline
    placed = permutation_phrase(report)
    spec = report.scenario.isolationtester and report.verdict.unjudged is not None  # never has a verdict
    return "\n".join(
        [
            f'<article class="run" id="{_run_anchor(report)}">',
            f"<h3>{escape(run_title(report))}</h3>",
            f'<p class="permutation">{escape(placed)}</p>' if placed else "",
            f'<p class="meta">PostgreSQL {escape(timeline.server_version)}, '
            f"{timeline.duration * 1000:.1f} ms, sessions {escape(', '.join(timeline.sessions))}</p>",
            f'<p class="meta">{escape(drivers)}</p>' if (drivers := drivers_phrase(timeline)) else "",
            _sql_output("setup", "before the steps", timeline.setup),
            _swimlanes(timeline, level_label(report)),
            derived_section(report, lambda step: _step_row(report, step)),
            _sql_output("teardown", "after the steps", timeline.teardown),
            _final_state(report),
            "" if spec else _verdict(report.verdict),
            _steps(report),
            "</article>",
        ]
    )


def _step_row(report: RunReport, step: str) -> str | None:
    """The id of a step's row in the step list: its last event (a step that waited: its
    completion, when what it did happened); None for a step that has no event."""
    events = report.timeline.step_events(step)
    return f"{_run_anchor(report)}-{events[-1].seq}" if events else None


def _sql_output(css: str, when: str, events: Sequence[Event]) -> str:
    """What setup or teardown SQL returned (describe.sql_output_lines), before or after the lanes."""
    said = sql_output_lines(events)
    if not said:
        return ""
    items = "".join(f"<li>{escape(line.strip())}</li>" for line in said)
    return f'<div class="sql-output {css}"><h4>{escape(when)}</h4><ul>{items}</ul></div>'



def _final_state(report: RunReport) -> str:
    """The final state: each `final:` query and its result, then each invariant and its SQL."""
    rows = []
    for fact in final_state(report):
        sql = f'<pre class="sql">{escape(fact.sql)}</pre>'
        if fact.invariant is None:
            rows.append(f'<tr class="final"><td>{sql}</td><td class="result">→ {escape(fact.result)}</td></tr>')
        else:
            css = {"holds": "holds", "broken": "bad"}.get(fact.result, "")
            rows.append(
                f'<tr class="invariant {css}"><td>invariant <code>{escape(fact.invariant)}</code>{sql}</td>'
                f'<td class="result">{escape(fact.result)}</td></tr>'
            )
    if not rows:
        return ""
    return f'<div class="final-state"><h4>{escape(FINAL_STATE)}</h4><table>{"".join(rows)}</table></div>'


def _verdict(verdict: Verdict) -> str:
    if verdict.unjudged is not None:
        differs = "".join(f"<li>{escape(line)}</li>" for line in mismatch_lines(verdict))
        return (f'<div class="verdict unjudged"><p class="headline">{escape(verdict_line(verdict))}</p>'
                + (f"<ul>{differs}</ul>" if differs else "") + "</div>")
    ok = verdict.matches_expectation
    headline = verdict_line(dataclasses.replace(verdict, note=None))
    rows = "".join(
        f'<tr class="{"" if f.ok else "bad"}"><td>{escape(f.subject)}</td><td>{escape(f.expected)}</td>'
        f"<td>{escape(f.observed)}</td><td class=\"mark\">{'✓ match' if f.ok else '✗ differs'}</td></tr>"
        for f in verdict.findings
    )
    differs = "".join(f"<li>✗ {escape(line)}</li>" for line in mismatch_lines(verdict))
    return "\n".join(
        [
            f'<div class="verdict {"ok" if ok else "bad"}">',
            f'<p class="headline">{"✓" if ok else "✗"} {escape(headline)}</p>',
            f'<p class="note">{escape(verdict.note)}</p>' if verdict.note else "",
            f"<ul>{differs}</ul>" if differs else "",
            "<table><tr><th>check</th><th>expected</th><th>observed</th><th></th></tr>" + rows + "</table>",
            "</div>",
        ]
    )


def _steps(report: RunReport) -> str:
    """Every event in order, with the SQL, its result and the scenario's narration."""
    narrated: set[str] = set()
    rows = []
    for event in report.timeline.events:
        step = report.scenario.steps.get(event.step)
        narration = step.narration if step and step.narration and event.step not in narrated else ""
        narrated.add(event.step)
        shown = event.sql and not event.after_wait and not event.wait_changed and event.outcome is not Outcome.NOTICE
        sql = f'<pre class="sql">{escape(textwrap.dedent(event.sql).strip())}</pre>' if shown else ""
        extra = [*event.notices, *notification_lines(event), *driver_lines(event)]
        if event.transaction_status and event.outcome not in (Outcome.BLOCKED, Outcome.NOTICE):  # mid-step
            extra.append(f"[{event.transaction_status}]")
        rows.append(
            f'<tr class="{_outcome_class(event)}" id="{_run_anchor(report)}'
            f'-{event.seq}"><td class="seq">{event.seq}</td><td class="session">{escape(event.session)}</td>'
            f'<td>{sql}'
            + "".join(f'<div class="result">{_mark(event) if i == 0 else "→"} {escape(phrase)}</div>'
                      for i, phrase in enumerate(result_phrases(event)))
            + "".join(f'<div class="server-said">{escape(line)}</div>' for line in error_lines(event))
            + "".join(f'<div class="extra">{escape(line)}</div>' for line in extra)
            + f'</td><td class="narration">{escape(narration)}</td></tr>'
        )
    return (
        '<table class="steps"><tr><th>#</th><th>session</th><th>statement and result</th>'
        f'<th>what happens</th></tr>{"".join(rows)}</table>'
    )


# -- the swimlane timeline ----------------------------------------------------------------


class TimeScale:
    """Seconds to x. Time runs left to right; a stretch of time in which a step runs or
    waits gets GAP units of its own and an idle stretch IDLE, so that instant steps stay
    visible. Only the rest of the width is shared out in proportion to durations."""

    def __init__(self, spans: Sequence[tuple[float, float]], width: float) -> None:
        self.points = sorted({t for span in spans for t in span}) or [0.0]
        stretches = list(zip(self.points, self.points[1:]))
        fixed = [GAP if any(_covers(span, stretch) for span in spans) else IDLE for stretch in stretches]
        spare = max(width - sum(fixed), width / 4)
        total = (self.points[-1] - self.points[0]) or 1.0
        self.xs = [0.0]
        for (a, b), room in zip(stretches, fixed):
            self.xs.append(self.xs[-1] + room + spare * (b - a) / total)
        self.width = max(self.xs[-1], width)

    def __call__(self, t: float) -> float:
        if len(self.points) < 2:
            return LABELS
        i = min(max(bisect.bisect_right(self.points, t) - 1, 0), len(self.points) - 2)
        a, b = self.points[i], self.points[i + 1]
        share = min(max((t - a) / (b - a), 0.0), 1.0)
        return LABELS + self.xs[i] + share * (self.xs[i + 1] - self.xs[i])


@dataclasses.dataclass
class Lanes:
    """Where each session's lane is, and which callouts (SQLSTATE, timeout...) are placed."""

    names: list[str]
    right: float  # the drawing's right edge: callouts stay inside it
    callouts: dict[str, list[tuple[float, float, str]]] = dataclasses.field(default_factory=dict)

    def top(self, session: str) -> float:
        return self.names.index(session) * LANE

    def callout(self, session: str, x: float, text: str) -> str:
        """A label below the bar, or above it when the one below would overlap another."""
        width = len(text) * CHAR + 6
        x = min(x, self.right - width)
        placed = self.callouts.setdefault(session, [])
        row = "below"
        if any(a < x + width and x < b and r == "below" for a, b, r in placed):
            row = "above"
        placed.append((x, x + width, row))
        y = self.top(session) + (BAR_TOP + BAR + 15 if row == "below" else BAR_TOP - 5)
        return f'<text class="callout" x="{x:.1f}" y="{y:.1f}">{escape(text)}</text>'


def _swimlanes(timeline: Timeline, level: str) -> str:
    names = list(dict.fromkeys([*timeline.sessions, *(e.session for e in timeline.events)]))
    scale = TimeScale(_spans(timeline), PLOT)
    width, height = LABELS + scale.width + 20, len(names) * LANE + AXIS
    lanes = Lanes(names, right=width)
    parts = [_lane_background(name, i, width) for i, name in enumerate(names)]
    parts.append(_axis(scale, len(names) * LANE))
    for event in timeline.events:
        parts.append(_event_shape(timeline, event, scale, lanes))
    for event in timeline.events:
        if event.after_wait:
            parts.extend(_links(timeline, event, scale, lanes))
    label = f"Timeline of {timeline.scenario} (level: {level}): one lane per session"
    return (
        f'<figure class="timeline"><svg class="lanes" viewBox="0 0 {width:.0f} {height}" '
        f'role="img" aria-label="{escape(label)}">' + "".join(parts) + "</svg>"
        "<figcaption>Time runs left to right, in ms since the run started. Every step gets a minimum "
        "width so that instant steps stay visible: the axis is not to scale. The numbers are the rows "
        "of the step list below; hover over a bar for its SQL and result.</figcaption></figure>"
    )


def _covers(span: tuple[float, float], stretch: tuple[float, float]) -> bool:
    """Does a step's span cover this stretch? An instant step covers the stretch after it."""
    start, end = span
    return start <= stretch[0] and (end >= stretch[1] or start == end == stretch[0])


def _spans(timeline: Timeline) -> list[tuple[float, float]]:
    """Each step from when it was sent until its result; a wait until it changed or completed."""
    return [
        _wait_span(timeline, e)[:2] if e.outcome is Outcome.BLOCKED else (e.started, e.ended) for e in timeline.events
    ]


def _lane_background(name: str, index: int, width: float) -> str:
    y = index * LANE
    return (
        f'<g class="lane" data-session="{escape(name)}"><rect class="lane-bg{" odd" if index % 2 else ""}" '
        f'x="0" y="{y}" width="{width:.0f}" height="{LANE}"/>'
        f'<text class="lane-name" x="10" y="{y + BAR_TOP + BAR / 2 + 5}">{escape(name)}</text></g>'
    )


def _axis(scale: TimeScale, y: float) -> str:
    """The time axis from the first step's start to the last result, ticks at round numbers of ms."""
    start, end = scale.points[0] * 1000, scale.points[-1] * 1000
    step = next((s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if (end - start) / s <= 12), 2000)
    parts = [f'<line class="axis" x1="{LABELS}" y1="{y}" x2="{scale(scale.points[-1]):.1f}" y2="{y}"/>']
    last = -1e9
    for k in range(math.ceil(start / step - 1e-9), math.floor(end / step + 1e-9) + 1):
        x = scale(k * step / 1000)
        if x - last >= 48:  # room for the label
            parts.append(
                f'<line class="grid" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{y + 5}"/>'
                f'<text class="tick" x="{x:.1f}" y="{y + 20}">{k * step:g}</text>'
            )
            last = x
    parts.append(f'<text class="tick unit" x="{LABELS - 12}" y="{y + 20}">ms</text>')
    return "".join(parts)


def _event_shape(timeline: Timeline, event: Event, scale: TimeScale, lanes: Lanes) -> str:
    """A step's bar; for a step that waited, the wait span, then its completion at the end."""
    if event.outcome is Outcome.BLOCKED:
        start, end, until = _wait_span(timeline, event)
        x1, x2 = scale(start), scale(end)
        done = until is not None and until.outcome is not Outcome.BLOCKED
        data = f' data-until="{until.seq if until else ""}"'
        return _bar(event, lanes, x1, x2 - (CAP if done else 0), "wait", data=data, least=0)
    x2 = scale(event.ended)
    if event.outcome is Outcome.NOTICE:  # notices read while the step waits: a mark on its wait
        return _bar(event, lanes, x2 - CAP, x2, "notice", least=CAP) + lanes.callout(event.session, x2 - CAP, "NOTICE")
    x1 = x2 - CAP if event.after_wait else scale(event.started)
    shape = _bar(event, lanes, x1, x2, _outcome_class(event))
    callout = _callout_text(event)
    return shape + (lanes.callout(event.session, x1 + 1, callout) if callout else "")


def _bar(event: Event, lanes: Lanes, x1: float, x2: float, css: str, data: str = "", least: float = GAP - 6) -> str:
    width = max(x2 - x1, least) - 2
    y = lanes.top(event.session) + BAR_TOP
    label = _fit(_label_parts(event), width)
    sql = "\n" + textwrap.dedent(event.sql).strip() if event.python else " ".join(event.sql.split())
    tooltip = "\n".join([
        f"#{event.seq} {event.session}: {sql}", f"{_mark(event)} {result_phrase(event)}", *error_lines(event),
        *event.notices, *notification_lines(event),
    ])
    sqlstate = f' data-sqlstate="{escape(event.error.sqlstate)}"' if event.error and event.error.sqlstate else ""
    return (
        f'<g class="bar {css}" data-seq="{event.seq}" data-session="{escape(event.session)}" '
        f'data-step="{escape(event.step)}"{sqlstate}{data}><title>{escape(tooltip)}</title>'
        f'<rect x="{x1 + 1:.1f}" y="{y}" width="{width:.1f}" height="{BAR}" rx="4"/>'
        f'<text x="{x1 + 7:.1f}" y="{y + BAR / 2 + 5}">{escape(label)}</text></g>'
    )


def _links(timeline: Timeline, done: Event, scale: TimeScale, lanes: Lanes) -> list[str]:
    """Arrows into the completion of a step that waited, one from each session it waited for,
    drawn from that session's last event before the completion.

    Solid: that event ended after the wait was seen, so it (a COMMIT, a ROLLBACK, an error)
    let the step go on. Dashed: the step gave up (a deadlock, a lock_timeout, the step
    timeout) while the other session still held the lock, or waited itself.
    """
    waited = [e for e in timeline.events if e.seq < done.seq and (e.session, e.step) == (done.session, done.step)]
    wait_seen = waited[-1].ended if waited else done.started
    links = []
    for blocker in (b for b in done.blocked_by if b in lanes.names):  # not for a pool's connection
        before = [e for e in timeline.events if e.session == blocker and e.seq < done.seq]
        source = before[-1] if before else None
        released = source is not None and source.outcome is not Outcome.BLOCKED and source.ended >= wait_seen
        links.append(_link(source, blocker, done, released, scale, lanes))
    return links


def _link(source: Event | None, blocker: str, done: Event, released: bool, scale: TimeScale, lanes: Lanes) -> str:
    x_to = scale(done.ended) - CAP / 2
    x_from = scale(source.ended) - 6 if released and source else x_to
    down = lanes.top(blocker) < lanes.top(done.session)
    y_from = lanes.top(blocker) + BAR_TOP + (BAR if down else 0)
    y_to = lanes.top(done.session) + BAR_TOP + (-3 if down else BAR + 3)
    origin = f"#{source.seq} {source.step} ({blocker})" if source else blocker
    tooltip = f"{origin} → #{done.seq} {done.step}: {result_phrase(done)}"
    return (
        f'<g class="link {"released" if released else "held"}" data-from="{source.seq if source else ""}" '
        f'data-to="{done.seq}"><title>{escape(tooltip)}</title>'
        f'<line x1="{x_from:.1f}" y1="{y_from}" x2="{x_to:.1f}" y2="{y_to}"/></g>'
    )


def _wait_span(timeline: Timeline, blocked: Event) -> tuple[float, float, Event | None]:
    """One stretch of a wait: from when it began (the step was sent, or its wait changed)
    to the event that ended it: the wait's next change or the step's completion (None: the
    run ended first)."""
    later = timeline.events[timeline.events.index(blocked) + 1 :]
    same = (blocked.session, blocked.step)
    until = next((e for e in later if (e.after_wait or e.wait_changed) and (e.session, e.step) == same), None)
    start = blocked.ended if blocked.wait_changed else blocked.started
    return start, until.ended if until else max(e.ended for e in timeline.events), until


# -- small helpers ------------------------------------------------------------------------


def _mark(event: Event) -> str:
    if event.outcome is Outcome.OK:
        return "↳" if event.after_wait else "→"
    return OUTCOME_MARKS[event.outcome]


def _outcome_class(event: Event) -> str:
    return event.outcome.value + (" after-wait" if event.after_wait else "") + (" rolled-back" if event.rolled_back else "")


def _callout_text(event: Event) -> str:
    if event.outcome is Outcome.ERROR and event.error is not None:
        return event.error.sqlstate or event.error.exception.rsplit(".", 1)[-1]
    if event.rolled_back:
        return "ROLLBACK"
    if event.notifications:
        return "NOTIFY " + ", ".join(dict.fromkeys(n.channel for n in event.notifications))
    return {Outcome.TIMEOUT: "timeout", Outcome.SKIPPED: "skipped"}.get(event.outcome, "")


def _label_parts(event: Event) -> list[str]:
    """What a bar can say, most important first: its number, the SQL command (SELECT...), the wait."""
    parts = [f"{'' if event.outcome is Outcome.OK else _mark(event)}{event.seq}"]
    parts += [word for word in event.sql.split()[:1] if word.isalpha() and word.isupper()]
    if event.outcome is Outcome.BLOCKED:
        parts.append(result_phrase(event).split(" (")[0])
    return parts


def _fit(parts: list[str], width: float) -> str:
    """The longest run of leading parts that fits the width; the first part always."""
    label = parts[0]
    for part in parts[1:]:
        if (len(label) + 1 + len(part)) * CHAR + 12 > width:
            break
        label += " " + part
    return label


def _anchor(*parts: str) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts)


def _legend() -> str:
    box = '<rect class="swatch {}" x="0" y="4" width="34" height="18" rx="3"/>'
    line = '<line class="swatch {}" x1="0" y1="13" x2="30" y2="13"/>'
    items = [
        (box.format("ok"), "a step (its row in the step list)"),
        (box.format("wait"), "◷ waiting for another session"),
        (box.format("error"), "✗ error, SQLSTATE beside it"),
        (box.format("timeout"), "⚠ cancelled after the timeout"),
        (box.format("skipped"), "∅ skipped"),
        (box.format("notice"), "ℹ notices sent while the step waits"),
        (line.format("released"), "this step's end let the waiting step go on"),
        (line.format("held"), "gave up while the other session held the lock"),
    ]
    cells = "".join(
        f'<li><svg width="40" height="26" viewBox="0 0 40 26" aria-hidden="true">{shape}</svg>{escape(text)}</li>'
        for shape, text in items
    )
    return f'<ul class="legend">{cells}</ul>'


CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

DEFS = """<svg class="defs" width="0" height="0" aria-hidden="true"><defs>
<pattern id="txl-hatch" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<rect width="8" height="8" fill="#fdf1d3"/>
<line x1="0" y1="0" x2="0" y2="8" stroke="#e69f00" stroke-width="3"/></pattern>
<marker id="txl-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
<path d="M0,0 L10,5 L0,10 z" fill="#1b1f24"/></marker>
</defs></svg>"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{defs}
{body}
</body>
</html>
"""

CSS = """
:root { --ink: #1b1f24; --muted: #545d68; --line: #c8ced6; --ok: #0072b2; --ok-fill: #d6e8f6;
  --wait: #e69f00; --wait-ink: #6b4700; --bad: #b4460c; --bad-ink: #8a3000; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0 auto; max-width: 1300px; padding: 24px 36px 64px; color: var(--ink); background: #fff;
  font: 18px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Liberation Sans", sans-serif; }
h1 { font-size: 2.1rem; margin: 0 0 .2em; }
h2 { font-size: 1.65rem; margin: 2em 0 .3em; padding-top: .5em; border-top: 5px solid var(--ink); }
h3 { font-size: 1.3rem; margin: 1.8em 0 .1em; }
a { color: #005a8c; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; }
pre.sql { margin: 0 0 .15em; white-space: pre-wrap; font-size: .88em; }
.meta { color: var(--muted); margin: .1em 0 .6em; }
table { border-collapse: collapse; width: 100%; margin: .4em 0 1em; }
th, td { text-align: left; vertical-align: top; padding: .35em .6em; border-bottom: 1px solid var(--line); }
th { background: #eef1f4; }
table.contents { width: auto; }
td.bad, tr.bad td { color: var(--bad-ink); font-weight: 700; }
td.mark { white-space: nowrap; }
ul.references { padding-left: 1.2em; }
ul.marks { font-size: .85em; color: var(--muted); padding-left: 1.2em; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .3em 1.6em; font-size: .85em; }
ul.legend li { display: flex; align-items: center; gap: .4em; }
figure.timeline { margin: .6em 0 1em; }
figure.timeline svg { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .8em; }
svg.defs { position: absolute; }
svg text { font: 15px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; fill: var(--ink); }
.lane-bg { fill: #fff; } .lane-bg.odd { fill: #f3f5f7; }
.lane-name { font-size: 18px; font-weight: 700; }
.axis { stroke: var(--ink); stroke-width: 1.5; } .grid { stroke: #dde1e6; stroke-width: 1; }
text.tick { fill: var(--muted); text-anchor: middle; } text.tick.unit { text-anchor: end; }
.bar rect, .swatch.ok { fill: var(--ok-fill); stroke: var(--ok); stroke-width: 1.5; }
.bar.wait rect, .swatch.wait { fill: url(#txl-hatch); stroke: #a86f00; stroke-width: 1.5; }
.bar.wait text { font-weight: 700; paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
.bar.error rect, .swatch.error { fill: var(--bad); stroke: #5c1f00; stroke-width: 2; }
.bar.error text { fill: #fff; font-weight: 700; }
.bar.timeout rect, .swatch.timeout { fill: #fbe3d3; stroke: var(--bad); stroke-width: 2.5; stroke-dasharray: 5 3; }
.bar.notice rect, .swatch.notice { fill: #e8f0e0; stroke: #3c6e1f; stroke-width: 1.5; }
.sql-output h4 { margin: .6em 0 .1em; } .sql-output ul { margin: 0 0 .6em; font-size: .9em; }
p.permutation { font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, monospace; margin: 0; }
.verdict.unjudged { border-left: 8px solid var(--line); }
.bar.skipped rect, .swatch.skipped { fill: #fff; stroke: #5f6770; stroke-width: 1.5; stroke-dasharray: 4 3; }
text.callout { font-weight: 700; fill: var(--bad-ink); }
.link line, line.swatch { stroke: var(--ink); stroke-width: 2.5; marker-end: url(#txl-arrow); }
.link.held line, line.swatch.held { stroke-dasharray: 6 4; }
.final-state h4 { margin: .8em 0 .2em; }
.final-state .result { font-weight: 700; white-space: nowrap; }
tr.invariant.holds .result { color: var(--ok); }
.verdict { border-left: 8px solid var(--ok); padding: .2em 0 .1em 1em; margin: .6em 0 1.2em; }
.verdict.bad { border-left: 8px double var(--bad); }
.verdict .headline { font-weight: 700; font-size: 1.1em; margin: .3em 0; }
.verdict.bad .headline { color: var(--bad-ink); }
.verdict .note { margin: .2em 0 .5em; }
table.steps td.seq { font-weight: 700; width: 2.5em; }
table.steps td.session { font-weight: 700; white-space: nowrap; }
table.steps td.narration { font-style: italic; width: 38%; }
table.steps .result { font-weight: 600; }
table.steps .extra { color: var(--muted); font-size: .85em; }
table.steps .server-said { color: var(--bad-ink); font-size: .9em; }
tr.blocked .result { color: var(--wait-ink); }
tr.error .result, tr.timeout .result, tr.rolled-back .result { color: var(--bad-ink); font-weight: 700; }
tr.error td.seq, tr.timeout td.seq { box-shadow: inset 6px 0 0 var(--bad); }
tr.blocked td.seq { box-shadow: inset 6px 0 0 var(--wait); }
@media print {
  body { font-size: 11pt; max-width: none; padding: 0; }
  section.scenario + section.scenario { break-before: page; }
  figure, .verdict, tr { break-inside: avoid; }
}
"""
