"""Fitting text output to a terminal's width, measured in display columns.

Lengths here are what a terminal shows, not `len()`: colour codes take no room and wide
characters (emoji such as ⏳, CJK) take two columns. The column counts come from the
`wcwidth` library, which implements Unicode's East Asian Width and zero-width rules
(tabulate uses it too when it is installed, so its tables line up with these figures).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

import click
from tabulate import tabulate
from wcwidth import wcswidth, wcwidth

from txnlab.control_pictures import LAYOUT, picture, pictured
from txnlab.sql_spacing import kept_spans

# Below this a column holds too little to read; tables narrower than that are left wider
# than the terminal rather than cut into one-letter slivers.
MIN_CELL = 6

# Our own colours (SGR sequences, ESC [ ... m), and the control characters that are not.
_SGR_OR_CONTROL = re.compile(r"(\x1b\[[0-9;]*m)|([\x00-\x08\x0b-\x1f\x7f-\x9f])")


def visible(text: str) -> str:
    """`text` with its control characters shown as Unicode control pictures (BEL as ␇, ESC
    as ␛): a scenario's text or a value must not ring, move the cursor or hide text on a
    presenter's terminal, nor throw the width count off. Colour codes (SGR) are kept;
    tab and newline are whitespace and kept too."""
    return _SGR_OR_CONTROL.sub(lambda m: m.group(1) or picture(m.group(2)), text)


def display_width(text: str) -> int:
    """Columns the widest line of `text` takes on a terminal (ANSI colour codes ignored)."""
    return max((_line_width(line) for line in text.splitlines()), default=0)


def _line_width(line: str) -> int:
    plain = click.unstyle(line)
    width = wcswidth(plain)
    if width >= 0:
        return width
    return sum(max(wcwidth(char), 0) for char in plain)  # control characters take no room


def wrap(text: str, width: int, *, indent: str = "") -> list[str]:
    """Word-wrap plain text (no colour codes) so that no line is wider than `width` columns.

    Whitespace runs collapse to one space; a word wider than a line is cut; every other
    control character, ESC of a colour code included, becomes visible (`text` is data, never
    styled: see txnlab.control_pictures). Every line starts with `indent`; returns at least
    one line.
    """
    return _fill(pictured(text, keep=LAYOUT).split(), width, indent)


def wrap_sql(text: str, width: int, *, indent: str = "") -> list[str]:
    """`wrap` for SQL, code, or a line quoting them (`sent: ...`): whitespace between tokens
    is layout and collapses as in `wrap`, but a run of spaces inside a string constant, a
    quoted identifier or a comment is data and is kept (sql_spacing.kept_spans), so
    `SELECT 'a  b'` shows as sent. Such a token is never broken at its spaces, only cut when
    wider than a line; a line break inside one still breaks the displayed line."""
    text = pictured(text, keep=LAYOUT)
    spans = kept_spans(text)
    words, start = [], 0
    for gap in re.finditer(r"\s+", text):
        inside = gap.group().strip(" ") == "" and any(a < gap.start() and gap.end() < b for a, b in spans)
        if not inside:
            words.append(text[start:gap.start()])
            start = gap.end()
    words.append(text[start:])
    return _fill([word for word in words if word], width, indent)


def _fill(words: Sequence[str], width: int, indent: str) -> list[str]:
    """`words` laid out on lines of at most `width` columns (see wrap), one space apart."""
    room = max(1, width - display_width(indent))
    lines: list[str] = []
    current = ""
    for word in words:
        while display_width(word) > room:  # cut a word that cannot fit on any line
            if current:
                lines.append(current)
                current = ""
            head = _prefix_within(word, room)
            lines.append(head)
            word = word[len(head):]
        if not current:
            current = word
        elif display_width(current) + 1 + display_width(word) <= room:
            current += " " + word
        else:
            lines.append(current)
            current = word
    lines.append(current)
    return [indent + line for line in lines]


def code_lines(code: str, width: int, *, indent: str = "") -> list[str]:
    """A Python step's code as the reader wrote it: one output line per line of `code` (blank
    lines dropped), its common indentation removed and each line's own kept (4 columns per
    tab), so a `for`/`with`/`async with` block still reads as a block. A line wider than
    `width` is wrapped with `wrap` (2 columns narrower, for its continuation lines, which hang
    2 columns deeper than the line); indentation deeper than half the room is capped there, so
    no line is wider than `width` and half of it is always left for the text."""
    lines: list[str] = []
    for line in textwrap.dedent(code.expandtabs(4)).splitlines():
        if not line.strip():
            continue
        cap = max(0, width - display_width(indent)) // 2
        depth = min(len(line) - len(line.lstrip(" ")), cap)
        hang = indent + " " * min(depth + 2, cap)  # continuation lines hang 2 deeper
        first, *rest = wrap_sql(line, width, indent=hang)
        lines += [indent + " " * depth + first[len(hang):], *rest]
    return lines or [indent]


def hanging(prefix: str, text: str, width: int) -> list[str]:
    """`prefix` then `text` wrapped beside it, continuation lines aligned under the text
    (as in `  3. alice  read  SELECT ...`); the prefix keeps its own spacing."""
    margin = display_width(prefix)
    if width - margin < 2 * MIN_CELL:
        return wrap(prefix + text, width)
    first, *rest = wrap(text, width - margin)
    return [prefix + first] + [" " * margin + line for line in rest]


def _prefix_within(word: str, room: int) -> str:
    """The longest prefix of `word` at most `room` columns wide (at least one character)."""
    used = 0
    for index, char in enumerate(word):
        used += max(wcwidth(char), 0)
        if used > room:
            return word[: max(index, 1)]
    return word


def wrap_paragraphs(text: str, width: int, *, indent: str = "") -> str:
    """`wrap` for each paragraph of `text` (paragraphs end at blank lines; the line breaks
    within one are reflowed, as a YAML block's hard-wrapped lines need), blank lines kept."""
    paragraphs = re.split(r"\n[ \t]*\n", text.strip("\n"))
    return "\n\n".join("\n".join(wrap(paragraph, width, indent=indent)) for paragraph in paragraphs)


def fit_table(
    rows: Sequence[Sequence[object]], headers: Sequence[str], *, width: int, tablefmt: str, keep: Sequence[int] = ()
) -> str:
    """A tabulate table no wider than `width` columns, wrapping cells (headers too) as needed.

    Columns narrower than their fair share keep their natural width; the others share
    what is left, so a table that fits is unchanged. The columns numbered in `keep`
    (names a reader copies) are never wrapped while the others can still give way. A
    table whose columns would have to be narrower than `MIN_CELL` to fit is returned
    at that minimum, wider than `width`: callers with many columns offer a compact layout first.
    """
    cells = [[visible(str(cell)) for cell in row] for row in rows]
    headers = [visible(header) for header in headers]
    natural = [
        max([display_width(headers[index])] + [display_width(row[index]) for row in cells])
        for index in range(len(headers))
    ]
    table = _render(cells, headers, tablefmt, [None] * len(headers))
    overhead = display_width(table) - sum(natural)
    limits = _share(natural, width - overhead, set(keep))
    while True:
        table = _render(cells, headers, tablefmt, limits)
        excess = display_width(table) - width
        if excess <= 0 or max(limits) <= MIN_CELL:
            return table
        yielding = [i for i in range(len(limits)) if i not in keep and limits[i] > MIN_CELL] or range(len(limits))
        widest = max(yielding, key=lambda i: limits[i])  # a word cut or a header padding: shrink and retry
        limits[widest] = max(MIN_CELL, limits[widest] - excess)


def _share(natural: list[int], budget: int, keep: set[int]) -> list[int]:
    """Column widths within `budget`: the kept and the narrow columns whole, the wide ones share the rest."""
    limits = list(natural)
    left = budget - sum(natural[i] for i in keep)
    order = sorted((i for i in range(len(natural)) if i not in keep), key=lambda i: natural[i])
    for position, index in enumerate(order):
        fair = left // (len(order) - position)
        limits[index] = min(natural[index], max(MIN_CELL, fair))
        left -= limits[index]
    return limits


def _render(cells: list[list[str]], headers: Sequence[str], tablefmt: str, limits: list[int | None]) -> str:
    return tabulate(
        cells, headers=list(headers), tablefmt=tablefmt, disable_numparse=True,
        maxcolwidths=limits, maxheadercolwidths=limits,
    )
