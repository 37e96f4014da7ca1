"""Text timelines fit the terminal however many sessions a run has (issue 10: a new user's
`COLUMNS=80 txnlab run deadlock-hard.spec`, 8 sessions, was 166 columns wide with words broken
mid-word). When the session columns cannot each get their minimum width, the timeline turns
into one row per event naming its session; otherwise it keeps one column per session."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

EIGHT = "".join(
    f"session s{i}\nstep t{i} {{ SELECT 'AccessExclusiveLock' AS lock_mode_{i}; }}\n" for i in range(1, 9)
) + "permutation " + " ".join(f"t{i}" for i in range(1, 9)) + "\n"


def _headers(out: str) -> list[list[str]]:
    """The header row of each table in the text output, its cells stripped."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│ #")]


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


@pytest.mark.parametrize("columns", [60, 80, 100])
def test_eight_sessions_fit_the_terminal_one_row_per_event(cli, monkeypatch, tmp_path: Path, columns: int) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", str(columns))
    spec = tmp_path / "eight.spec"
    spec.write_text(EIGHT)
    code, out, err = cli("run", str(spec))
    assert (code, err) == (0, "")
    assert max(map(_width, out.splitlines())) <= columns
    assert "AccessExclusiveLock" in out and out.count("AccessExclusiveLock") == 16  # SQL and result, never broken
    assert _headers(out) == [["#", "session", "what happens"]]
    assert [line.split("│")[2].strip() for line in out.splitlines() if "SELECT" in line] == [f"s{i}" for i in range(1, 9)]


def test_two_sessions_keep_one_column_each_at_80(cli, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    spec = tmp_path / "two.spec"
    spec.write_text("session a\nstep a1 { SELECT 1; }\nsession b\nstep b1 { SELECT 2; }\n")
    code, out, _ = cli("run", str(spec))
    assert code == 0
    assert _headers(out) == [["#", "a", "b"]] * 2  # both permutations
