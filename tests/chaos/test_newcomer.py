"""Hostile text against the output's promises, bounded (a few seconds): random strings of
wide, zero-width, combining and control characters, Markdown and HTML punctuation.

- wrapped text and fitted tables are never wider than asked (in display columns);
- wrapping loses no character of the text, and control characters become visible;
- Markdown inline text carries no raw HTML, no unescaped `|`, no line break;
- a scenario whose values are such text runs through the real CLI and keeps both promises.
"""

from __future__ import annotations

import random
import re
import textwrap
from pathlib import Path

from test_cli import scenario_file
from txnlab.render.fit import MIN_CELL, display_width, fit_table, visible, wrap
from txnlab.render.markdown import code, inline

ALPHABET = (
    "abc xyz  019 -_.,;:()[]{}<>|`*#!~\\&'\"/"  # ASCII, Markdown and HTML punctuation
    "⏳✓✗◷→↳漢字한국어"  # wide and single-width symbols
    "\u0301\u200b\u200d"  # combining accent, zero-width space and joiner
    "\t\n\x07\x1b"  # control characters
)
TRIALS = 400


def hostile(rng: random.Random, longest: int = 120) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, longest)))


def test_wrapped_text_is_never_wider_than_asked_and_loses_nothing() -> None:
    rng = random.Random(8)
    for _ in range(TRIALS):
        text, width = hostile(rng), rng.randint(1, 120)
        lines = wrap(text, width)
        assert all(display_width(line) <= max(width, 2) for line in lines), (text, width)  # a wide char needs 2
        assert "".join("".join(lines).split()) == "".join(visible(text).split())  # controls made visible


def test_fitted_tables_are_never_wider_than_the_terminal_when_their_columns_can_be() -> None:
    rng = random.Random(15)
    for _ in range(TRIALS // 4):
        columns, width = rng.randint(1, 6), rng.choice([80, 120])
        headers = [hostile(rng, 12).replace("\n", " ") or "h" for _ in range(columns)]
        rows = [[hostile(rng, 80) for _ in range(columns)] for _ in range(rng.randint(0, 4))]
        table = fit_table(rows, headers, width=width, tablefmt="simple_grid")
        if columns * (MIN_CELL + 3) + 1 <= width:
            assert display_width(table) <= width, (rows, headers, width)


def test_markdown_inline_text_and_code_spans_stay_inert() -> None:
    rng = random.Random(16)
    for _ in range(TRIALS):
        text = hostile(rng)
        escaped = inline(text)
        assert "<" not in escaped and ">" not in escaped and "\n" not in escaped
        assert not re.search(r"(?<!\\)\|", escaped.replace("\\\\", ""))
        span = code(text)
        fence = re.match(r"`+", span).group(0)  # type: ignore[union-attr]
        assert fence not in span[len(fence):-len(fence)] and "\n" not in span


def test_a_scenario_full_of_hostile_values_fits_80_columns_and_makes_safe_markdown(cli, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(42)
    values = [hostile(rng, 60).replace("'", "''").replace("\x00", "") for _ in range(4)]
    steps = "\n".join(
        f"  - {{name: s{i}, session: {'ab'[i % 2]}, sql: \"SELECT {sql_literal(v)} AS v{i}\"}}"
        for i, v in enumerate(values)
    )
    path = scenario_file(tmp_path, textwrap.dedent("""\
        name: hostile-values
        title: Hostile values
        summary: Values made of wide, combining, control and Markdown characters.
        sessions: {a: {}, b: {}}
        steps:
          - {name: controls, session: a, sql: "SELECT 1 AS one /* \\e[2J\\a clears the screen, rings */"}
        """) + steps + "\nexpect: {all: {}}\n")
    monkeypatch.setenv("COLUMNS", "80")
    code_, out, err = cli("run", path, "--level", "rc")
    assert code_ == 0, err
    assert all(display_width(line) <= 80 for line in out.splitlines())
    assert "\x1b" not in out and "\x07" not in out and "␛[2J␇" in out  # NO_COLOR: no escape at all
    code_, out, err = cli("run", path, "--level", "rc", "--format", "markdown")
    assert code_ == 0, err
    outside_code = re.sub(r"(`+).+?\1", "", out)
    assert "<" not in outside_code.replace("<br>", "")
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert len({len(re.findall(r"(?<!\\)\|", row.replace("\\\\", ""))) for row in rows}) == 1


def sql_literal(value: str) -> str:
    """A PostgreSQL escape-string literal for any text, written with YAML-safe escapes."""
    return "E'" + "".join(c if c.isalnum() or c in " ⏳✓漢" else f"\\\\u{ord(c):04x}" for c in value) + "'"
