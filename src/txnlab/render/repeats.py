"""`txnlab run NAME --repeat N`: each cell run N times, its distinct timelines and what each matched.

A scenario whose timeline the server does not fix (a race inside PostgreSQL, a value like
txid_current()) shows it here: runs are grouped by what happened, compared without the
clock (`Timeline.transcript()`, the invariants' and `final:` results, what they matched),
and each group is shown once, with the runs that produced it and the expectation or
accepted alternative they matched.
Text, Markdown and JSON say the same; JSON only adds keys to `txnlab run --format json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from txnlab.checks import Verdict
from txnlab.render import markdown, text
from txnlab.render.fit import fit_table, wrap
from txnlab.render.json import run_to_dict
from txnlab.render.report import RunReport
from txnlab.timeline import JSON_SCHEMA_VERSION


@dataclass(frozen=True)
class DistinctTimeline:
    """Runs that behaved alike: the first of them (to show) and the numbers (from 1) of all."""

    number: int  # 1, 2, ... in the order each timeline was first seen
    report: RunReport
    runs: tuple[int, ...]


@dataclass(frozen=True)
class RepeatedCell:
    """One scenario at one level, run `len(reports)` times in a row."""

    reports: tuple[RunReport, ...]

    @property
    def first(self) -> RunReport:
        return self.reports[0]

    @cached_property
    def timelines(self) -> list[DistinctTimeline]:
        """The distinct timelines, in the order they were first seen."""
        groups: dict[str, list[int]] = {}
        for number, report in enumerate(self.reports, 1):
            groups.setdefault(_behaviour(report), []).append(number)
        return [
            DistinctTimeline(index, self.reports[runs[0] - 1], tuple(runs))
            for index, runs in enumerate(groups.values(), 1)
        ]

    def timeline_of(self, run: int) -> int:
        """The number of the distinct timeline run `run` (from 1) produced."""
        return next(t.number for t in self.timelines if run in t.runs)

    def tally(self) -> dict[str, int]:
        """How many runs matched what: "the expectation", "alternative NAME", "nothing", "could not run"."""
        counts: dict[str, int] = {}
        for report in self.reports:
            key = matched(report.verdict)
            counts[key] = counts.get(key, 0) + 1
        return counts


def _behaviour(report: RunReport) -> str:
    """What two runs must share to count as the same timeline: the events without the clock,
    the invariants' results, the `final:` rows, whether the run could run at all, and what
    it matched (a caption says it for all the runs it shows, and an expectation can read
    what the timeline does not show, such as an error's DETAIL)."""
    timeline = report.timeline
    behaviour = [
        timeline.transcript(),
        sorted(timeline.invariants.items()),
        [e.transcript() for e in timeline.final],
        timeline.could_not_run,
        matched(report.verdict),
    ]
    # As canonical text: values can be lists and mappings (arrays, json, a Python step's dict).
    return json.dumps(behaviour, sort_keys=True, default=repr)


def matched(verdict: Verdict) -> str:
    """What a run matched, in words: "the expectation", "alternative NAME", "nothing", "could not run"."""
    if verdict.could_not_run is not None:
        return "could not run"
    if not verdict.matches_expectation:
        return "nothing"
    return f"alternative {verdict.alternative}" if verdict.alternative else "the expectation"


def group(reports: Sequence[RunReport], repeat: int) -> list[RepeatedCell]:
    """Reports of cells each run `repeat` times in a row, grouped by cell."""
    return [RepeatedCell(tuple(reports[i:i + repeat])) for i in range(0, len(reports), repeat)]


def summary_line(cell: RepeatedCell) -> str:
    """One line per cell: runs, distinct timelines, and what the runs matched."""
    first, count = cell.first, len(cell.timelines)
    tally = ", ".join(f"{n} could not run" if what == "could not run" else f"{n} matched {what}"
                      for what, n in cell.tally().items())
    return (f"{first.scenario.name} at {first.verdict.level.value}: {len(cell.reports)} runs, "
            f"{count} distinct timeline{'s' if count != 1 else ''}; {tally}")


def _timeline_caption(cell: RepeatedCell, distinct: DistinctTimeline) -> str:
    runs = ", ".join(map(str, distinct.runs))
    return (f"timeline {distinct.number} of {len(cell.timelines)}: {len(distinct.runs)} of {len(cell.reports)} "
            f"runs ({runs}), matched {matched(distinct.report.verdict)}")


def render_text(cell: RepeatedCell, *, width: int, color: bool) -> str:
    """Each distinct timeline once, captioned with its runs, then the cell's summary line."""
    style = text.TextStyle(color)
    parts = []
    for distinct in cell.timelines:
        caption = [style(line, bold=True) for line in wrap(_timeline_caption(cell, distinct), width)]
        parts.append("\n".join([*caption, text.render_timeline(distinct.report, width=width, color=color)]))
    parts.append("\n".join(style(line, bold=True) for line in wrap(summary_line(cell), width)))
    return "\n\n".join(parts)


def render_text_summary(cells: Sequence[RepeatedCell], *, width: int) -> str:
    """A table for several cells: runs, distinct timelines, what the runs matched."""
    rows = [
        [c.first.scenario.name, c.first.verdict.level.value, str(len(c.reports)), str(len(c.timelines)),
         "; ".join(f"{what}: {n}" for what, n in c.tally().items())]
        for c in cells
    ]
    return fit_table(rows, ["scenario", "level", "runs", "timelines", "matched"], width=width, tablefmt="simple")


def render_markdown(cells: Sequence[RepeatedCell]) -> str:
    """The same as the text output, in Markdown."""
    parts = []
    for cell in cells:
        for distinct in cell.timelines:
            parts.append(f"*{markdown.inline(_timeline_caption(cell, distinct))}*\n\n"
                         + markdown.render_timeline(distinct.report))
        parts.append(f"**{markdown.inline(summary_line(cell))}**")
    return "\n\n".join(parts) + "\n"


def render_json(cells: Sequence[RepeatedCell]) -> str:
    """`txnlab run --format json --repeat N`: the document of `run --format json`, every run in
    it with two more keys, `repeat` (its number in its cell, from 1) and `timeline` (the number
    of the distinct timeline it produced), plus `repeats`, one summary per cell."""
    runs, summaries = [], []
    for cell in cells:
        for number, report in enumerate(cell.reports, 1):
            runs.append({**run_to_dict(report), "repeat": number, "timeline": cell.timeline_of(number)})
        summaries.append({
            "scenario": cell.first.scenario.name,
            "level": cell.first.verdict.level.value,
            "runs": len(cell.reports),
            "distinct_timelines": len(cell.timelines),
            "timelines": [
                {"timeline": d.number, "runs": list(d.runs), "matched": matched(d.report.verdict)}
                for d in cell.timelines
            ],
            "matched": cell.tally(),
        })
    document = {"schema_version": JSON_SCHEMA_VERSION, "runs": runs, "repeats": summaries}
    return json.dumps(document, indent=2) + "\n"
