"""SQL text compared up to its layout: the whitespace *between* tokens collapsed, never the
whitespace inside one.

What a driver sent is compared with a scenario's `sent:` up to layout (a driver may send a
statement as the scenario's author wrapped it over lines), but `SELECT 'a  b'` and
`SELECT 'a b'` are different statements: the whitespace inside a string constant (`'...'`,
`E'...'`, `U&'...'`, `$tag$...$tag$`), a quoted identifier (`"..."`) or a comment is data and
stays as written. The tokens come from PostgreSQL's own scanner (libpg_query's, through
pglast, a dependency already), so they follow the lexical rules of the PostgreSQL docs,
section 4.1 "Lexical Structure", exactly.
"""

from __future__ import annotations

from pglast.parser import ParseError, scan


def collapse_layout(sql: str) -> str:
    """`sql` with each run of whitespace between two tokens as one space (one line break after
    a `--` comment, which the line break ends), none at either end,
    and every token (literals, quoted identifiers, comments) as written. Text the scanner
    refuses (an unterminated quote: not SQL) is only stripped at its ends, never collapsed
    inside, since where its literals end is unknown."""
    try:
        tokens = scan(sql)
    except ParseError:
        return sql.strip()
    parts: list[str] = []
    end = 0
    after_line_comment = False
    for token in tokens:  # offsets in characters, `end` inclusive
        if parts and token.start > end:  # only whitespace lies between two tokens
            parts.append("\n" if after_line_comment else " ")  # a `--` comment ends at the line's end
        parts.append(sql[token.start:token.end + 1])
        end = token.end + 1
        after_line_comment = token.name == "SQL_COMMENT"
    return "".join(parts)


def kept_spans(text: str) -> list[tuple[int, int]]:
    """Where whitespace in `text` is data: the (start, end) character offsets, end exclusive,
    of each token that holds whitespace (a string constant, a quoted identifier, a comment),
    so a display that wraps `text` keeps it as written. Empty when the scanner refuses it."""
    try:
        tokens = scan(text)
    except ParseError:
        return []
    spans = [(token.start, token.end + 1) for token in tokens]
    return [(start, end) for start, end in spans if any(c.isspace() for c in text[start:end])]
