"""The server's view of an asyncpg session's transaction is what the server really has
(pg_stat_activity's state, the last ReadyForQuery), whatever a Python step did with the
errors it met: a caught error, an error re-raised as another exception, a savepoint rolled
back inside the step, or a step that sends nothing after a failed statement."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from scenario_text import scenario_from_yaml

from txnlab.levels import Level
from txnlab.runner.drivers.asyncpg import AsyncpgSession

# pg_stat_activity.state -> the timeline's words for the server's view
STATES = {
    "idle": "idle",
    "idle in transaction": "in transaction",
    "idle in transaction (aborted)": "in failed transaction",
}

SCENARIO = """
name: status
title: status
summary: one session that is not autocommit.
sessions: {app: {}, other: {}}
steps:
  - {name: s1, session: app, sql: SELECT 1}
  - {name: s2, session: other, sql: SELECT 1}
expect:
  all: {}
"""


@pytest.fixture
def session(scratch_dsn: str) -> Iterator[AsyncpgSession]:
    session = AsyncpgSession(scratch_dsn)
    try:
        yield session
    finally:
        session.close()


def server_view(dsn: str, pid: int) -> str:
    """What the server says of the backend `pid`, from another connection."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
            return STATES[cur.fetchone()[0]]
    finally:
        conn.close()


async def swallow_error(conn: Any) -> str:
    try:
        await conn.execute("SELECT 1/0")
    except Exception:  # noqa: BLE001 - the application caught it
        return "caught"
    return "not raised"


async def wrap_error(conn: Any) -> None:
    try:
        await conn.execute("SELECT 1/0")
    except Exception as exc:
        raise ValueError("wrapped") from exc


async def recover_inside(conn: Any) -> int:
    await conn.execute("SAVEPOINT a")
    try:
        await conn.execute("SELECT 1/0")
    except Exception:  # noqa: BLE001 - recovered below
        pass
    await conn.execute("ROLLBACK TO SAVEPOINT a")
    return 1


async def send_nothing(conn: Any) -> None:
    return None


@pytest.mark.parametrize("function", [swallow_error, wrap_error, recover_inside, send_nothing])
def test_a_python_steps_transaction_status_is_the_servers_own(
    session: AsyncpgSession, scratch_dsn: str, function: Any
) -> None:
    assert session.execute("BEGIN").error is None
    if function is send_nothing:
        assert session.execute("SELECT 1/0").error is not None
    result = session.call(function)
    assert result.transaction_status == server_view(scratch_dsn, session.pid)
    assert session.transaction_status() == server_view(scratch_dsn, session.pid)


def test_a_commit_step_after_an_error_a_python_step_caught_is_answered_rollback(
    scratch_dsn: str, session: AsyncpgSession
) -> None:
    scenario = scenario_from_yaml(SCENARIO, "status.yaml")
    session.configure(scenario, scenario.sessions[0], Level.READ_COMMITTED, "public")
    assert session.execute("SELECT 1").transaction_status == "in transaction"
    session.call(swallow_error)
    result = session.execute("COMMIT")
    assert result.status == "ROLLBACK"
    assert result.transaction_status == server_view(scratch_dsn, session.pid) == "idle"
