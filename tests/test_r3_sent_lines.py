"""A captured timeline prints a step's SQL once: `sent: as written` when the driver sent
exactly it (layout aside, as `sent:` expectations compare), the messages in full when they
differ; and the text view wraps SQL and `sent:` lines without collapsing the spaces inside
a literal. JSON keeps what was sent exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TEXT_COLUMNS = 80
pytestmark = pytest.mark.usefixtures("plain_output")

SCENARIO = """\
name: sent-once
title: What was sent, said once
summary: An autocommit session sends its SELECT as written; a default one adds a BEGIN.
capture: true
sessions:
  auto: {autocommit: true}
  implicit: {}
  third: {autocommit: true}
steps:
  - {name: a1, session: auto, sql: "SELECT 'a  b' AS v"}
  - {name: i1, session: implicit, sql: "SELECT 'c  d' AS w"}
  - {name: t1, session: third, sql: "SELECT\\n  1 AS one"}
  - {name: i2, session: implicit, sql: "COMMIT"}
permutations: [[a1, i1, t1, i2]]
levels: [read committed]
expect:
  read committed: {}
"""


@pytest.fixture
def scenario(tmp_path: Path) -> str:
    path = tmp_path / "sent-once.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return str(path)


def test_a_step_sent_as_written_is_printed_once_and_a_rewrite_in_full(cli, scenario: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", scenario, "--level", "rc")
    assert (code, err) == (0, "")
    assert out.count("SELECT 'a  b'") == 1, out
    assert out.count("sent: as written") == 3, out  # a1, t1 (layout aside), i2
    sent_i1 = [line for line in out.splitlines() if "sent: BEGIN" in line]
    assert len(sent_i1) == 1, out


def test_text_wrapping_keeps_the_spaces_inside_literals(cli, scenario: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", scenario, "--level", "rc")
    assert out.count("'a  b'") == 2, out  # the step's SQL and the row it read
    assert out.count("'c  d'") == 3, out  # the step's SQL, the row it read, the sent line that adds a BEGIN
    assert "'a b'" not in out and "'c d'" not in out


def test_json_keeps_what_was_sent_exact(cli, scenario: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", scenario, "--level", "rc", "--format", "json")
    sent = {e["step"]: e["sent"] for e in json.loads(out)["runs"][0]["events"] if e.get("step")}
    assert sent["a1"] == ["SELECT 'a  b' AS v"]
    assert sent["t1"] == ["SELECT\n  1 AS one"]
    assert "SELECT 'c  d' AS w" in sent["i1"] and len(sent["i1"]) == 2


def test_markdown_says_as_written_like_text(cli, scenario: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", scenario, "--level", "rc", "--format", "markdown")
    assert "sent: as written" in out
