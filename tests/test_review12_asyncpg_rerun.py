"""A run on a reused asyncpg session sends what it sends on a new connection: the reset
between runs drops asyncpg's type cache (reload_schema_state), so asyncpg introspects a user
type again in the next run; txnlab's own record of the types it met must go with it, or the
second run of a scenario (the next level of a matrix) shows other wire messages than the first."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from scenario_text import scenario_from_yaml

from txnlab.levels import Level
from txnlab.runner.drivers.asyncpg import AsyncpgSession
from txnlab.runner.wiretap import WireTap

SCHEMA = "txnlab_review12_rerun"
SCENARIO = """
name: rerun
title: rerun
summary: one asyncpg session, run twice.
sessions: {app: {}, other: {}}
steps:
  - {name: s1, session: app, sql: SELECT 1}
  - {name: s2, session: other, sql: SELECT 1}
expect:
  all: {}
"""
STEP = f"SELECT ROW(1, 'x')::{SCHEMA}.pair"


@pytest.fixture
def pair_type(scratch_dsn: str) -> Iterator[None]:
    """A composite type that outlives the runs (as an extension's type would)."""
    conn = psycopg2.connect(scratch_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}; "
                    f"CREATE TYPE {SCHEMA}.pair AS (n int, label text)")
    try:
        yield
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        conn.close()


@pytest.fixture
def tap(scratch_dsn: str) -> Iterator[WireTap]:
    tap = WireTap(scratch_dsn)
    try:
        yield tap
    finally:
        tap.close()


def one_run(session: AsyncpgSession, tap: WireTap) -> tuple[tuple, tuple[str, ...]]:
    scenario = scenario_from_yaml(SCENARIO, "rerun.yaml")
    spec = scenario.session("app")
    session.configure(scenario, spec, Level.READ_COMMITTED, "public")
    tap.take(session.pid)
    result = session.execute(STEP)
    sent = tap.take(session.pid)
    session.finish(scenario, spec)
    return result.rows, sent


@pytest.mark.usefixtures("pair_type")
def test_the_second_run_on_a_reused_asyncpg_session_sends_what_the_first_sent(
    scratch_dsn: str, tap: WireTap
) -> None:
    session = AsyncpgSession(tap.dsn(scratch_dsn))
    try:
        first, second = one_run(session, tap), one_run(session, tap)
    finally:
        session.close()
    assert first[0] == second[0] == (("(1,x)",),)
    assert any("typeinfo_tree" in message for message in first[1])  # asyncpg meets the type
    assert second[1] == first[1]
