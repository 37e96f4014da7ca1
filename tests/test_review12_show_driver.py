"""`txnlab show` tells how each session runs its transactions through the session's own
driver: a psycopg 3 or asyncpg session was described as "psycopg2 default: implicit
transactions"."""

from __future__ import annotations

from scenario_text import scenario_from_yaml

from txnlab.cli.catalogue import describe

SCENARIO = """
name: show-drivers
title: One session per driver
summary: each session begins its transactions its driver's way.
sessions:
  old: {driver: psycopg2}
  new: {driver: psycopg}
  aio: {driver: asyncpg}
  plain: {driver: asyncpg, autocommit: true}
steps:
  - {name: s1, session: old, sql: SELECT 1}
  - {name: s2, session: new, sql: SELECT 1}
  - {name: s3, session: aio, sql: SELECT 1}
  - {name: s4, session: plain, sql: SELECT 1}
expect:
  all: {}
"""


def session_line(shown: str, name: str) -> str:
    return next(line.strip() for line in shown.splitlines() if line.strip().startswith(f"{name} ("))


def test_show_names_each_sessions_own_driver_and_how_it_begins() -> None:
    shown = describe(scenario_from_yaml(SCENARIO, "show.yaml"), width=200)
    assert session_line(shown, "old") == "old (psycopg2 default: implicit transactions)"
    assert session_line(shown, "new") == "new (psycopg 3 default: implicit transactions)"
    assert session_line(shown, "aio") == "aio (asyncpg: conn.transaction() started before the first statement)"
    assert session_line(shown, "plain") == "plain (asyncpg, autocommit, statements as written)"
