"""`txnlab drivers` as text, round 2: lines break between tokens, never inside a keyword or
an identifier that fits its column (the trial saw "ROLLBA" / "CK"), at every width, in the
grid and in the line-per-driver layout, on a table derived live on the real server.
"""

from __future__ import annotations

import pytest

from txnlab.drivers_table import catalogue
from txnlab.drivers_table.bench import run_probes
from txnlab.drivers_table.layout import pieces, wrap_tokens
from txnlab.drivers_table.model import DriversTable
from txnlab.drivers_table.render import _headers, _rows, render_text
from txnlab.render.fit import display_width

pytestmark = pytest.mark.database

GRID_RULES = "│├┼┤┌┐└┘─┬┴╞╪╡"


@pytest.fixture(scope="module")
def table(server_dsn: str) -> DriversTable:
    return run_probes(server_dsn, catalogue.drivers(), catalogue.BEHAVIOURS, catalogue.probes())


def _tokens(table: DriversTable) -> set[str]:
    texts = [*_headers(table), *(f"{h}:" for h in _headers(table)), *(text for row in _rows(table) for text in row),
             f"Python drivers on PostgreSQL {table.server_version} (what each sent → what happened)"]
    return {token for text in texts for token in text.split()}


def _segments(text: str, width: int, table: DriversTable):  # type: ignore[no-untyped-def]
    """Each run of text in the output with the room its column had: a grid cell, or a line
    of the per-driver layout (beside its driver's header, or under it)."""
    prefixes = [f"  {h}: " for h in _headers(table)[1:]]
    for line in text.splitlines():
        if line[:1] in GRID_RULES:
            if line[:1] != "│":
                continue  # a rule line
            for segment in line.strip("│").split("│"):
                yield segment, display_width(segment) - 2
            continue
        prefix = next((p for p in prefixes if line.startswith(p)), None)
        if prefix is not None:
            yield line[len(prefix):], width - len(prefix)
        else:
            yield line, width - (len(line) - len(line.lstrip(" ")))


def _cut_wrongly(word: str, room: int, tokens: set[str]) -> bool:
    """Whether `word`, not a whole token, cuts a keyword or identifier that fits `room`."""
    if word in tokens:
        return False
    whole = [t for t in tokens if word in t and display_width(t) > room]
    if not whole:
        return True  # a piece of a token that fits its column
    return all(
        any(p not in pieces(t) and not any(p in q and display_width(q) > room for q in pieces(t))
            for p in pieces(word))
        for t in whole
    )


@pytest.mark.parametrize("width", [40, 60, 80, 120, 140, 200, 300])
def test_text_breaks_lines_between_tokens_never_inside_one_that_fits(table: DriversTable, width: int) -> None:
    text = render_text(table, width)
    tokens = _tokens(table)
    assert display_width(text) <= width
    wrong = [(word, room) for segment, room in _segments(text, width, table)
             for word in segment.split() if _cut_wrongly(word, room, tokens)]
    assert not wrong, f"at {width} columns, cut: {wrong[:10]}"


def test_the_grid_is_used_only_where_it_keeps_every_identifier_whole(table: DriversTable) -> None:
    assert not render_text(table, 80).startswith("┌") and not render_text(table, 120).startswith("┌")
    assert render_text(table, 300).startswith("┌")
    assert "current_setting('transaction_isolation')" in render_text(table, 300)


def test_a_keyword_that_fits_goes_whole_to_the_next_line() -> None:
    assert wrap_tokens("BEGIN · SELECT 1 · ROLLBACK", 12) == ["BEGIN ·", "SELECT 1 ·", "ROLLBACK"]
    assert wrap_tokens("runs current_setting('transaction_isolation')", 24) == [
        "runs", "current_setting('", "transaction_isolation')"]
    assert wrap_tokens("x __asyncpg_savepoint_12__;", 10) == ["x", "__asyncpg_", "savepoint_", "12__;"]
