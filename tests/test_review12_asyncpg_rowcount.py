"""An asyncpg step's rowcount is what psycopg2's cursor.rowcount is for the same statement:
the command tag's count, and for a statement whose tag carries none but that returns rows
(SHOW, EXPLAIN) the number of rows, so a `rowcount:` expectation means the same whatever
driver runs the scenario."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from txnlab.runner.drivers.asyncpg import AsyncpgSession
from txnlab.runner.drivers.psycopg2 import Psycopg2Session


@pytest.fixture
def sessions(scratch_dsn: str) -> Iterator[tuple[AsyncpgSession, Psycopg2Session]]:
    asyncpg_session, psycopg2_session = AsyncpgSession(scratch_dsn), Psycopg2Session(scratch_dsn)
    try:
        yield asyncpg_session, psycopg2_session
    finally:
        asyncpg_session.close()
        psycopg2_session.close()


@pytest.mark.parametrize(
    "sql", ["SHOW TimeZone", "EXPLAIN (COSTS OFF) SELECT 1 UNION ALL SELECT 2", "VALUES (1), (2)", "SET TimeZone = 'UTC'"]
)
def test_an_asyncpg_steps_rowcount_is_psycopg2s(
    sessions: tuple[AsyncpgSession, Psycopg2Session], sql: str
) -> None:
    asyncpg_result, psycopg2_result = (session.execute(sql) for session in sessions)
    assert asyncpg_result.error is None and psycopg2_result.error is None
    assert asyncpg_result.rowcount == psycopg2_result.rowcount
