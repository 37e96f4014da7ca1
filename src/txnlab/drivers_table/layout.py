"""Laying the drivers table out in a terminal's width without cutting SQL apart.

Lines break between whitespace-separated tokens only. A token wider than its column (e.g.
`current_setting('transaction_isolation')`) starts a line of its own and breaks between its
pieces, a run of word characters (a keyword, an identifier, a number) or of others
(`('`, `);`), so that a keyword or an identifier is cut only when it alone is wider than
the column. Widths are display columns (render.fit.display_width).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tabulate import tabulate

from txnlab.render.fit import display_width, visible

GRID_FORMAT = "simple_grid"

# tabulate pads a header this much beyond its text (its MIN_PADDING): a header is wrapped
# this much narrower than its column, so that the column is no wider than planned.
HEADER_PADDING = 2

_PIECE = re.compile(r"\w+|[^\w\s]+")


def pieces(token: str) -> list[str]:
    """`token` cut where word characters meet others: "current_setting('x')" ->
    ["current_setting", "('", "x", "')"]. Joined, they are `token` again."""
    return _PIECE.findall(token)


def widest_piece(text: str) -> int:
    """The display width of the widest piece of any token of `text`: the narrowest column
    that holds every keyword and identifier of `text` whole."""
    return max((display_width(piece) for token in text.split() for piece in pieces(token)), default=0)


def wrap_tokens(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` columns, broken between tokens (whitespace runs
    become one space); a token wider than `width` gets lines of its own, broken between its
    pieces, and a piece wider than `width` is cut by character. At least one line."""
    lines: list[str] = []
    current = ""
    for token in visible(text).split():
        if not current:
            current = token
        elif display_width(current) + 1 + display_width(token) <= width:
            current += " " + token
            continue
        else:
            lines.append(current)
            current = token
        if display_width(current) > width:
            *whole, current = _split_long(current, width)
            lines += whole
    lines.append(current)
    return lines


def _split_long(token: str, width: int) -> list[str]:
    """A token wider than `width` as lines of at most `width` columns, between its pieces."""
    lines: list[str] = []
    current = ""
    for piece in pieces(token):
        if display_width(current + piece) <= width:
            current += piece
            continue
        if current:
            lines.append(current)
        while display_width(piece) > width:  # an identifier wider than the column: no choice
            head = _within(piece, width)
            lines.append(head)
            piece = piece[len(head):]
        current = piece
    return [*lines, current] if current else lines


def _within(text: str, width: int) -> str:
    """The longest prefix of `text` at most `width` columns wide (at least one character)."""
    for end in range(len(text), 0, -1):
        if display_width(text[:end]) <= width:
            return text[:end]
    return text[:1]


def column_widths(columns: Sequence[Sequence[str]], budget: int) -> list[int] | None:
    """Widths for `columns` (each the texts of one column, header first) within `budget`
    display columns: each column first gets its widest piece (its header's plus
    HEADER_PADDING), then the rest is shared out evenly, none wider than its longest text.
    None when the widest pieces alone exceed the budget (a grid would cut identifiers: the
    caller lays the table out another way)."""
    least = [max(widest_piece(header) + HEADER_PADDING, *(widest_piece(text) for text in cells))
             for header, *cells in columns]
    most = [max(display_width(" ".join(header.split())) + HEADER_PADDING,
                *(display_width(" ".join(text.split())) for text in cells))
            for header, *cells in columns]
    widths = list(least)
    left = budget - sum(widths)
    if left < 0:
        return None
    while left > 0:
        growing = [i for i, width in enumerate(widths) if width < most[i]]
        if not growing:
            break
        share = max(1, left // len(growing))
        for i in growing:
            grow = min(share, most[i] - widths[i], left)
            widths[i] += grow
            left -= grow
    return widths


def grid(rows: Sequence[Sequence[str]], headers: Sequence[str], width: int) -> str | None:
    """The table as a simple_grid at most `width` columns wide, each cell wrapped by
    wrap_tokens; None when no such grid keeps every keyword and identifier whole."""
    columns = [[header, *(row[i] for row in rows)] for i, header in enumerate(headers)]
    widths = column_widths(columns, width - _grid_overhead(len(headers)))
    if widths is None:
        return None

    def wrapped(texts: Sequence[str], padding: int = 0) -> list[str]:
        return ["\n".join(wrap_tokens(text, widths[i] - padding)) for i, text in enumerate(texts)]

    return _grid([wrapped(row) for row in rows], wrapped(headers, HEADER_PADDING))


def _grid(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    return tabulate(rows, headers=list(headers), tablefmt=GRID_FORMAT, disable_numparse=True)


def _grid_overhead(columns: int) -> int:
    """The display columns a grid of `columns` columns takes beyond its cells' text: its rules
    and padding, measured on cells as wide as their header plus HEADER_PADDING."""
    cell = "x" * (1 + HEADER_PADDING)
    return display_width(_grid([[cell] * columns], ["x"] * columns)) - len(cell) * columns


def hanging(prefix: str, text: str, width: int) -> list[str]:
    """`prefix` then `text` wrapped beside it, continuation lines aligned under the text;
    where that leaves less room than `text`'s widest piece, the prefix and text flow together."""
    margin = display_width(prefix)
    if width - margin < widest_piece(text):
        return wrap_tokens(prefix + text, width)
    first, *rest = wrap_tokens(text, width - margin)
    return [prefix + first, *(" " * margin + line for line in rest)]
