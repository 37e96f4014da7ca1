"""`txnlab bench` as text: per scenario a short header, the table, its footnotes, the notes."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from txnlab.render.bench.report import BenchReport
from txnlab.render.bench.table import columns, footnotes, heading, meta_line, note_lines, rows
from txnlab.render.fit import visible, wrap


def render_text(reports: Sequence[BenchReport], *, width: int) -> str:
    """Every scenario's table, one after another; prose is wrapped to `width` columns (the
    table keeps its natural width: its figures are never cut)."""
    return "\n\n".join(render_one(report, width=width) for report in reports) + "\n"


def render_one(report: BenchReport, *, width: int) -> str:
    """One scenario's header, table, footnotes and notes."""
    shown = columns(report)
    table = tabulate(
        [[visible(cell) for cell in row] for row in rows(report)],
        headers=["\n".join(column.header) for column in shown],
        tablefmt="simple",
        disable_numparse=True,
        colalign=["right" if column.numeric else "left" for column in shown],
    )
    lines = [*wrap(heading(report), width), *wrap(meta_line(report), width), "", table, ""]
    lines += [line for note in footnotes(report) for line in wrap(note, width, indent="  ")]
    if notes := note_lines(report):
        lines += ["", "Notes:", *(line for note in notes for line in wrap(note, width, indent="  "))]
    return "\n".join(lines)
