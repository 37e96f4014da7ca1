"""The drivers table as text, Markdown, JSON and an HTML section; from the model only, never
the database.

A cell reads "sent → happened": the statements as the tap recorded them, joined by " · "
(each one's whitespace runs shown as one space, so asyncpg's four-line reset query fits a
cell; JSON keeps the exact text), then the facts.
"""

from __future__ import annotations

import json

from tabulate import tabulate

from txnlab.drivers_table.layout import grid, hanging, wrap_tokens
from txnlab.drivers_table.model import Cell, Driver, DriversTable
from txnlab.render.markdown import inline
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
    """A column's header: the driver and its installed version."""
    return f"{driver.label} {driver.version}"


def _headers(table: DriversTable) -> list[str]:
    return [f"on PostgreSQL {table.server_version}", *(header(d) for d in table.drivers)]


def _rows(table: DriversTable) -> list[list[str]]:
    return [[b.title, *(cell_text(table.cell(b.key, d.key)) for d in table.drivers)] for b in table.behaviours]


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
    rows = [[inline(cell) for cell in row] for row in _rows(table)]
    return tabulate(rows, headers=[inline(h) for h in _headers(table)], tablefmt="github")


def as_dict(table: DriversTable) -> dict[str, object]:
    """The JSON document (keys in docs/drivers.md): exact sent text, facts, per cell."""
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "server_version": table.server_version,
        "drivers": [
            {"key": d.key, "label": d.label, "package": d.package, "version": d.version, "dialect": d.dialect}
            for d in table.drivers
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
        cells = [f"<th>{escape(behaviour.title)}</th>"]
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


def _html_cell(cell: Cell) -> str:
    if not cell.applies:
        return NOT_APPLICABLE_MARK
    sent = "<br>".join(f"<code>{escape(statement(s))}</code>" for s in cell.sent) or escape(NOTHING_SENT)
    happened = f"error: {cell.error}" if cell.error is not None else cell.happened
    return f'{sent}<br>→ <span class="{"bad" if cell.error else ""}">{escape(happened)}</span>'


def html_page(table: DriversTable) -> str:
    """A self-contained page holding html_section, in the report's frame (render.html: its
    CSS, and a Content-Security-Policy that loads nothing)."""
    from txnlab.render.html import CSP, CSS, DEFS, PAGE

    title = "txnlab drivers"
    body = f"<header><h1>{escape(title)}</h1></header>\n{html_section(table)}"
    return PAGE.format(title=escape(title), csp=CSP, css=CSS, defs=DEFS, body=body)


DRIVERS_CSS = """
table.drivers td, table.drivers th { vertical-align: top; text-align: left; font-size: 13px; }
table.drivers code { white-space: pre-wrap; }
"""
