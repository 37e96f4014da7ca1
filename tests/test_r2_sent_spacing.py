"""`sent:` compares what the driver sent up to layout only: whitespace between tokens counts
as one space, but whitespace inside a string constant, a dollar-quoted body, a quoted
identifier or a comment is data (`SELECT 'a  b'` is not `SELECT 'a b'`). Checked on real
captured runs, and on the comparison's own function with PostgreSQL's scanner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from txnlab.sql_spacing import collapse_layout

SENT = "SELECT 'a  b' AS \"x  y\", $q$ c  d $q$ AS v /* e  f */"
SCENARIO = """\
name: spacing-on-the-wire
title: t
summary: s
levels: [rc]
capture: true
sessions: {app: {autocommit: true}, other: {autocommit: true}}
steps:
  - name: app_select
    session: app
    sql: |-
      SELECT   'a  b' AS "x  y",
             $q$ c  d $q$ AS v /* e  f */
  - {name: other_select, session: other, sql: SELECT 1}
expect:
  rc:
    sent:
      app_select: [EXPECTED]
"""


def run(cli, tmp_path: Path, expected: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def,type-arg]
    path = tmp_path / "spacing.yaml"
    path.write_text(SCENARIO.replace("EXPECTED", json.dumps(expected)))
    code, out, err = cli("run", str(path), "--level", "rc", "--format", "json")
    assert code in (0, 1), err
    return code, json.loads(out)["runs"][0]


def test_layout_between_tokens_does_not_count(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, document = run(cli, tmp_path, "  SELECT 'a  b'   AS \"x  y\",  $q$ c  d $q$\n AS v /* e  f */ ")
    assert code == 0 and document["verdict"]["matches_expectation"] is True


@pytest.mark.parametrize("inside", [
    SENT.replace("'a  b'", "'a b'"),            # a string constant
    SENT.replace('"x  y"', '"x y"'),            # a quoted identifier
    SENT.replace("$q$ c  d $q$", "$q$ c d $q$"),  # a dollar-quoted body
    SENT.replace("/* e  f */", "/* e f */"),    # a comment
])
def test_whitespace_inside_a_literal_identifier_or_comment_is_compared_exactly(cli, tmp_path: Path, inside: str) -> None:  # type: ignore[no-untyped-def]
    code, document = run(cli, tmp_path, inside)
    assert code == 1 and document["verdict"]["matches_expectation"] is False
    [finding] = [f for f in document["verdict"]["findings"] if f["subject"] == "sent for app_select"]
    assert finding["observed"] == "SELECT 'a  b' AS \"x  y\", $q$ c  d $q$ AS v /* e  f */"


def test_collapse_layout_keeps_tokens_and_the_line_break_that_ends_a_line_comment() -> None:
    assert collapse_layout("  SELECT\t 1 ,\n E'p  q'  ") == "SELECT 1 , E'p  q'"
    assert collapse_layout("SELECT 1 -- one  two\n\n   + 2") == "SELECT 1 -- one  two\n+ 2"
    assert collapse_layout("SELECT 'never  closed") == "SELECT 'never  closed"
