"""The drivers table as text, Markdown, JSON and an HTML section; from the model only, never
the database.

A cell reads "sent → happened": the statements as the tap recorded them, joined by " · "
(each one's whitespace runs shown as one space, so asyncpg's four-line reset query fits a
cell; JSON keeps the exact text), then the facts.
"""

from __future__ import annotations

import json
import re

from tabulate import tabulate

from txnlab.drivers_table.layout import grid, hanging, pieces, wrap_tokens
from txnlab.drivers_table.model import Cell, Driver, DriversTable
from txnlab.render.markdown import code, inline
from txnlab.render.markup import escape
from txnlab.timeline import JSON_SCHEMA_VERSION

NOT_APPLICABLE_MARK = "—"
NOTHING_SENT = "(nothing sent)"


def statement(text: str) -> str:
    """One sent statement on one line: its whitespace runs as single spaces."""
    return " ".join(text.split())


def cell_text(cell: Cell) -> str:
    """A cell in words: "BEGIN · INSERT INTO t VALUES (1) → server: idle in transaction; ..."."""
    if not cell.applies:
        return NOT_APPLICABLE_MARK
    sent = " · ".join(statement(s) for s in cell.sent) or NOTHING_SENT
    happened = f"error: {cell.error}" if cell.error is not None else cell.happened
    return f"{sent} → {happened}"


def header(driver: Driver) -> str:
    """A column's header: the driver and its installed version, then the driver a SQLAlchemy
    dialect runs on and its own: "SQLAlchemy 2.1.9 + psycopg2 2.9.13"."""
    named = f"{driver.label} {driver.version}"
    return f"{named} + {header(driver.dbapi)}" if driver.dbapi is not None else named


# A behaviour's title marks code (`with`) between backticks, as Markdown does.
_CODE_SPAN = re.compile(r"`([^`]+)`")


def title_spans(title: str) -> list[tuple[str, bool]]:
    """`title` as (text, is_code) spans: "`with` block" -> [("with", True), (" block", False)]."""
    spans: list[tuple[str, bool]] = []
    for i, part in enumerate(_CODE_SPAN.split(title)):
        if part:
            spans.append((part, i % 2 == 1))
    return spans


def _headers(table: DriversTable) -> list[str]:
    return [f"on PostgreSQL {table.server_version}", *(header(d) for d in table.drivers)]


def _rows(table: DriversTable) -> list[list[str]]:
    return [[b.title, *(cell_text(table.cell(b.key, d.key)) for d in table.drivers)] for b in table.behaviours]


def _markdown_title(title: str) -> str:
    """The title with its code spans as Markdown code, the rest escaped (inline() trims the
    spaces around each piece of text: they are put back)."""
    return "".join(code(text) if is_code else _padded(text, inline(text)) for text, is_code in title_spans(title))


def _padded(text: str, escaped: str) -> str:
    return (" " if text[:1].isspace() else "") + escaped + (" " if text[-1:].isspace() else "")


def render_text(table: DriversTable, width: int) -> str:
    """The table in at most `width` display columns, lines broken between tokens
    (drivers_table.layout): a grid when every column can hold its widest keyword or
    identifier whole, else each behaviour as a heading and a line per driver."""
    table_grid = grid(_rows(table), _headers(table), width)
    if table_grid is not None:
        return table_grid
    lines = wrap_tokens(f"Python drivers on PostgreSQL {table.server_version} (what each sent → what happened)", width)
    for behaviour in table.behaviours:
        lines += ["", *wrap_tokens(behaviour.title, width)]
        for driver in table.drivers:
            lines += hanging(f"  {header(driver)}: ", cell_text(table.cell(behaviour.key, driver.key)), width)
    return "\n".join(lines)


def render_markdown(table: DriversTable) -> str:
    """A GitHub Markdown table, every cell escaped."""
    rows = [[_markdown_title(title), *(inline(cell) for cell in cells)] for title, *cells in _rows(table)]
    return tabulate(rows, headers=[inline(h) for h in _headers(table)], tablefmt="github")


def as_dict(table: DriversTable) -> dict[str, object]:
    """The JSON document (keys in docs/drivers.md): exact sent text, facts, per cell."""
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "server_version": table.server_version,
        "drivers": [
            _driver_dict(d) for d in table.drivers
        ],
        "behaviours": [
            {
                "key": b.key,
                "title": b.title,
                "cells": {d.key: _cell_dict(table.cell(b.key, d.key)) for d in table.drivers},
            }
            for b in table.behaviours
        ],
    }


def _driver_dict(driver: Driver) -> dict[str, object]:
    return {"key": driver.key, "label": driver.label, "package": driver.package, "version": driver.version,
            "dialect": driver.dialect, "dbapi": None if driver.dbapi is None else _driver_dict(driver.dbapi)}


def _cell_dict(cell: Cell) -> dict[str, object]:
    return {"applies": cell.applies, "sent": list(cell.sent), "happened": cell.happened, "error": cell.error,
            "teardown": list(cell.teardown)}


def render_json(table: DriversTable) -> str:
    """as_dict, indented."""
    return json.dumps(as_dict(table), indent=2)


def html_section(table: DriversTable) -> str:
    """The table as an HTML <section id="drivers"> with its own few CSS rules, for a page in
    render.html's frame (`txnlab drivers -o`, `txnlab report --drivers`)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in _headers(table))
    lines = []
    for behaviour in table.behaviours:
        cells = [f"<th>{_html_title(behaviour.title)}</th>"]
        for driver in table.drivers:
            cells.append(f"<td>{_html_cell(table.cell(behaviour.key, driver.key))}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return "\n".join([
        '<section class="drivers" id="drivers">',
        f"<style>{DRIVERS_CSS}</style>",
        "<h2>Python drivers side by side</h2>",
        f'<p class="meta">Every cell was derived live on PostgreSQL {escape(table.server_version)}: '
        "what the driver sent (the wire tap), then what happened (the server's facts).</p>",
        f'<table class="contents drivers"><tr>{head}</tr>{"".join(lines)}</table>',
        "</section>",
    ])


def _html_title(title: str) -> str:
    return "".join(f"<code>{escape(text)}</code>" if is_code else escape(text) for text, is_code in title_spans(title))


def _html_cell(cell: Cell) -> str:
    if not cell.applies:
        return NOT_APPLICABLE_MARK
    sent = "<br>".join(f"<code>{breakable(statement(s))}</code>" for s in cell.sent) or escape(NOTHING_SENT)
    if cell.error is not None:
        return f'{sent}<br>→ <span class="bad">{escape(f"error: {cell.error}")}</span>'
    return f"{sent}<br>→ {escape(cell.happened)}"


def breakable(text: str) -> str:
    """`text` HTML-escaped, with a <wbr> (a line break opportunity) before each keyword or
    identifier of a token but its first (drivers_table.layout.pieces): in a narrow column
    `current_setting('transaction_isolation')` wraps before `transaction_isolation`, while
    `(1)` stays whole."""
    return " ".join(_breakable_token(token) for token in text.split(" "))


def _breakable_token(token: str) -> str:
    html, words = "", 0
    for piece in pieces(token):
        is_word = piece[0].isalnum() or piece[0] == "_"
        html += ("<wbr>" if is_word and words else "") + escape(piece)
        words += is_word
    return html


def html_page(table: DriversTable) -> str:
    """A self-contained page holding html_section, in the report's frame (render.html: its
    CSS, and a Content-Security-Policy that loads nothing)."""
    from txnlab.render.html import CSP, CSS, DEFS, PAGE

    title = "txnlab drivers"
    body = f"<header><h1>{escape(title)}</h1></header>\n{html_section(table)}"
    return PAGE.format(title=escape(title), csp=CSP, css=CSS, defs=DEFS, body=body)


# Seven columns in the page's width, never wider (a 1280 px projector shows them all): the
# layout is fixed (columns share the table's width, whatever their content), long SQL wraps
# at the <wbr> of `breakable`, and a piece still wider than its column breaks anywhere.
DRIVERS_CSS = """
table.drivers { table-layout: fixed; width: 100%; }
table.drivers tr:first-child th:first-child { width: 8.5em; }
table.drivers td, table.drivers th { vertical-align: top; text-align: left; font-size: 13px; padding: .3em .4em; }
table.drivers td { overflow-wrap: anywhere; }
table.drivers code { white-space: pre-wrap; font-size: 11.5px; }
table.drivers .bad { color: var(--bad-ink); font-weight: 700; }
"""
