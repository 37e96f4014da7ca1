"""`txnlab show` says what PostgreSQL does one fact per line, with what a step sends joined
as timelines join it (" · "), never run together with other facts by "; " or " | "."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("plain_output")

SCENARIO = """\
name: my-asyncpg
title: A first asyncpg try
summary: An asyncpg session reads, a psycopg2 one inserts, the first commits.
capture: true
setup: CREATE TABLE t (i int);
sessions:
  a: {driver: asyncpg}
  b: {}
steps:
  - {name: a1, session: a, sql: "SELECT 1"}
  - {name: b1, session: b, sql: "INSERT INTO t VALUES (1)"}
  - {name: a2, session: a, sql: "COMMIT"}
permutations: [[a1, b1, a2]]
levels: [read committed]
expect:
  read committed:
    sent: {a1: ["BEGIN;", "SELECT 1"], a2: ["COMMIT;"]}
    state: {a2: idle}
"""


def test_show_heads_a_scenario_with_its_name_as_written_and_lists_each_fact_on_a_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "my-asyncpg.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    code, out, err = cli("show", str(path))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "my-asyncpg: A first asyncpg try"
    said = out.split("What PostgreSQL does:\n")[1].splitlines()
    assert said[:4] == [
        "  read committed:",
        "    a1 sends: BEGIN; · SELECT 1",
        "    a2 sends: COMMIT;",
        "    the server shows a2's session idle",
    ]
    assert ";;" not in out and " | " not in out
