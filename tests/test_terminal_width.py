"""Text output fits the terminal: at 80 and 120 columns no line is wider than the terminal,
measured in display columns (wcwidth: emoji such as ⏳ take two, colour codes none).
Every command that prints text runs for real, on the real server; the terminal's width
comes from $COLUMNS in-process, and from a real pseudo-terminal's size for step mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from terminal import run_on_terminal
from test_cli import scenario_file
from txnlab.render.fit import display_width, fit_table, wrap

WIDTHS = [80, 120]

WIDE_VALUES = """\
name: wide-values
title: Values with emoji ⏳⏳ and CJK 漢字漢字, which take two columns each
summary: A read returns a long value made of double-width characters.
sessions: {left: {}, right: {}}
steps:
  - {name: read, session: left, sql: "SELECT repeat('⏳漢', 40) AS wide"}
  - {name: other, session: right, sql: "SELECT repeat('x', 200) AS long_value"}
expect: {all: {}}
"""

COMMANDS = {
    "list": ["list"],
    "show": ["show", "atm-lost-update"],
    "run": ["run", "atm-lost-update", "--level", "rc"],
    "run, several levels": ["run", "write-skew-doctors", "--level", "rc,ser"],
    "matrix": ["matrix", "atm-lost-update", "phantom-booking-exclusion-constraint", "write-skew-doctors"],
    "hermitage": ["matrix", "--suite", "hermitage"],
    "myths": ["myths"],
    "demo": ["demo"],
    "help": ["--help"],
}


def too_wide(text: str, width: int) -> list[str]:
    return [line for line in text.splitlines() if display_width(line) > width]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_commands_text_output_fits_the_terminal(cli, monkeypatch, command: str, width: int) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", str(width))
    code, out, err = cli(*COMMANDS[command])
    assert code == 0, err
    assert out.count("\n") > 3
    assert too_wide(out, width) == []


@pytest.mark.parametrize("width", WIDTHS)
def test_double_width_values_are_measured_in_display_columns(cli, monkeypatch, tmp_path: Path, width: int) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", str(width))
    code, out, _ = cli("run", scenario_file(tmp_path, WIDE_VALUES), "--level", "rc")
    assert code == 0 and "⏳漢" in out
    assert too_wide(out, width) == []


def test_a_two_session_timeline_at_80_columns_uses_the_width_without_overflowing(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = cli("run", "atm-lost-update", "--level", "rc")
    table = [line for line in out.splitlines() if line.startswith(("┌", "│", "└"))]
    (used,) = {display_width(line) for line in table}
    assert 77 <= used <= 80  # two equal columns, each cell's lines wrapped at words: within a word's slack of the width


def test_at_80_columns_the_matrix_abbreviates_levels_with_a_legend(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = cli("matrix", "atm-lost-update")
    assert "│ ru " in out and "│ ser " in out and "read uncommitted" not in out.split("✓:")[0]
    assert "levels: ru = read uncommitted, rc = read committed, rr = repeatable read" in " ".join(out.split())


def test_at_80_columns_the_hermitage_table_turns_anomalies_into_rows(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = cli("matrix", "--suite", "hermitage")
    assert "│ anomaly " in out and "│ G2-item " in out


@pytest.mark.parametrize("width", WIDTHS)
def test_step_mode_on_a_real_terminal_wraps_everything_to_its_width(server_dsn: str, width: int) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    env["TXNLAB_DSN"] = server_dsn
    code, shown = run_on_terminal(["run", "atm-lost-update", "--level", "rc", "--step", "--predict"], env,
                                  columns=width, answer={"(o, b, f): ": "o\n", "(o, f): ": "o\n", "Press Enter to run it": "\n"})
    assert code == 0, shown
    assert shown.count("── step ") == 8 and "\x1b[" in shown  # a terminal: colour on
    assert too_wide(shown, width) == []
    assert shown.count("atm-lost-update at READ COMMITTED") == 2  # the heading and the timeline's, once each
    assert "· read committed" not in shown and "— READ COMMITTED" not in shown  # not repeated in every header


def test_wrap_counts_wide_characters_as_two_columns() -> None:
    assert wrap("⏳⏳⏳ ab", 4) == ["⏳⏳", "⏳", "ab"]
    assert all(display_width(line) <= 5 for line in wrap("漢字漢字漢字 a-long-word-that-must-be-cut", 5))


def test_fit_table_leaves_a_table_that_fits_unchanged() -> None:
    rows = [["a", "short"], ["b", "also short"]]
    from tabulate import tabulate

    assert fit_table(rows, ["k", "v"], width=80, tablefmt="simple") == tabulate(
        rows, headers=["k", "v"], tablefmt="simple", disable_numparse=True
    )


def test_list_at_80_columns_keeps_every_name_whole_and_in_order(cli, monkeypatch, catalogue) -> None:  # type: ignore[no-untyped-def]
    """Names are what a reader copies into `txnlab run`: never cut, listed alphabetically."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cli("list")
    assert code == 0 and too_wide(out, 80) == []
    first_words = [line.split()[0] for line in out.splitlines()[2:] if line and not line[0].isspace()]
    names = [word for word in first_words if word in catalogue.scenarios]
    assert names == sorted(catalogue.scenarios)
