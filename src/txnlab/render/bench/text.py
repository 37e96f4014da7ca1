"""`txnlab bench` as text: per scenario a short header, the table, its footnotes, the notes.

The table is laid out here rather than by tabulate, whose headers take two columns of
padding each: with seventeen columns that is the difference between fitting a projector
and not."""

from __future__ import annotations

from collections.abc import Sequence

from txnlab.render.bench.report import BenchReport
from txnlab.render.bench.table import Column, columns, footnotes, heading, meta_line, note_lines, rows
from txnlab.render.fit import display_width, visible, wrap

GAP = "  "  # between two columns


def render_text(reports: Sequence[BenchReport], *, width: int) -> str:
    """Every scenario's table, one after another; prose is wrapped to `width` columns (the
    table keeps its natural width: its figures are never cut)."""
    return "\n\n".join(render_one(report, width=width) for report in reports) + "\n"


def render_one(report: BenchReport, *, width: int) -> str:
    """One scenario's header, table, footnotes and notes."""
    lines = [*wrap(heading(report), width), *wrap(meta_line(report), width), "",
             *table_lines(columns(report), [[visible(cell) for cell in row] for row in rows(report)]), ""]
    lines += [line for note in footnotes(report) for line in wrap(note, width, indent="  ")]
    if notes := note_lines(report):
        lines += ["", "Notes:", *(line for note in notes for line in wrap(note, width, indent="  "))]
    return "\n".join(lines)


def table_lines(shown: Sequence[Column], cells: Sequence[Sequence[str]]) -> list[str]:
    """Header lines (stacked, bottom-aligned), a rule, then one line per row; numbers aligned
    right, words left, each column as wide as its widest line."""
    depth = max(len(column.header) for column in shown)
    headers = [("",) * (depth - len(column.header)) + column.header for column in shown]
    widths = [max(display_width(text) for text in (*header, *(row[i] for row in cells)))
              for i, header in enumerate(headers)]

    def line(texts: Sequence[str]) -> str:
        return GAP.join(_pad(text, width, column.numeric) for text, width, column in zip(texts, widths, shown)).rstrip()

    return [*(line([header[level] for header in headers]) for level in range(depth)),
            GAP.join("-" * width for width in widths), *(line(row) for row in cells)]


def _pad(text: str, width: int, right: bool) -> str:
    room = " " * (width - display_width(text))
    return room + text if right else text + room
