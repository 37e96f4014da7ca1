"""`txnlab bench -o FILE.html`: one self-contained page, in the HTML report's look
(render/html.py: its CSS, its Content-Security-Policy), with each scenario's table and
its chart inline as SVG. The page loads nothing."""

from __future__ import annotations

from collections.abc import Sequence

from txnlab.render.bench.chart import svg_element
from txnlab.render.bench.report import BenchReport
from txnlab.render.bench.table import Column, columns, footnotes, heading, meta_line, note_lines, rows, violated
from txnlab.render.html import CSP, CSS, PAGE
from txnlab.render.markup import escape

BENCH_CSS = """
table.bench td.num, table.bench th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.bench { font-size: .95em; }
div.wide { overflow-x: auto; }
figure.chart { margin: .6em 0 1em; }
figure.chart svg { width: 100%; height: auto; display: block; }
ul.footnotes { font-size: .85em; color: var(--muted); padding-left: 1.2em; }
"""


def render_html(reports: Sequence[BenchReport], title: str) -> str:
    """The whole page: `title`, then per scenario its heading, run line, chart, table and notes."""
    body = [f"<header><h1>{escape(title)}</h1>",
            '<p class="meta">Every figure below was measured on a real server.</p></header>',
            *(_section(report) for report in reports)]
    return PAGE.format(title=escape(title), csp=CSP, css=CSS + BENCH_CSS, defs="", body="\n".join(body))


def _section(report: BenchReport) -> str:
    shown = columns(report)
    head = "".join(f"<th{_numeric(c)}>{_breakable(c.title)}</th>" for c in shown)
    lines = []
    for result, row in zip(report.results, rows(report)):
        cells = "".join(f"<td{_numeric(c)}>{escape(cell)}</td>" for c, cell in zip(shown, row))
        marked = ' class="bad"' if violated(result) else ""  # an invariant failed: the row says so in bold
        lines.append(f"<tr{marked}>{cells}</tr>")
    notes = note_lines(report)
    summary = report.scenario.workload.summary if report.scenario.workload else None
    return "\n".join([
        f'<section class="scenario" id="{escape(report.scenario.name)}">',
        f"<h2>{escape(heading(report))}</h2>",
        f'<p class="meta">{escape(meta_line(report))}</p>',
        f"<p>{escape(' '.join(summary.split()))}</p>" if summary else "",
        f'<figure class="chart">{svg_element(report)}</figure>',
        f'<div class="wide"><table class="bench"><tr>{head}</tr>{"".join(lines)}</table></div>',
        f'<ul class="footnotes">{"".join(f"<li>{escape(n)}</li>" for n in footnotes(report))}</ul>',
        (f'<h3>Notes</h3><ul>{"".join(f"<li>{escape(n)}</li>" for n in notes)}</ul>' if notes else ""),
        "</section>",
    ])


def _numeric(column: Column) -> str:
    return ' class="num"' if column.numeric else ""


def _breakable(name: str) -> str:
    """A header as HTML that may break after each `_` (balance_matches_ledger is wide)."""
    return escape(name).replace("_", "_<wbr>")
