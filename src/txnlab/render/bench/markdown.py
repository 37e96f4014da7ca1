"""`txnlab bench --format markdown`: the text output's table as GitHub Markdown."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from txnlab.render.bench.report import BenchReport
from txnlab.render.bench.table import columns, footnotes, heading, meta_line, note_lines, rows
from txnlab.render.markdown import inline


def render_markdown(reports: Sequence[BenchReport]) -> str:
    """Per scenario: a `##` heading, the run's line, the table, its footnotes and notes."""
    return "\n".join(render_one(report) for report in reports)


def render_one(report: BenchReport) -> str:
    shown = columns(report)
    table = tabulate(
        [[cell if column.numeric else inline(cell) for column, cell in zip(shown, row)] for row in rows(report)],
        headers=[inline(column.title) for column in shown],
        tablefmt="github",
        disable_numparse=True,
        colalign=["right" if column.numeric else "left" for column in shown],
    )
    lines = [f"## {inline(heading(report))}", "", inline(meta_line(report)), "", table, ""]
    lines += [f"- {inline(note)}" for note in footnotes(report)]
    if notes := note_lines(report):
        lines += ["", "Notes:", "", *(f"- {inline(note)}" for note in notes)]
    return "\n".join(lines) + "\n"
