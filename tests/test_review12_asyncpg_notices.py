"""An asyncpg session's notices are the text psycopg2 and psycopg 3 sessions record for the
same notice: libpq's, with its DETAIL and HINT lines (asyncpg's kept only the first line)."""

from __future__ import annotations

import pytest

from txnlab.runner.drivers.asyncpg import AsyncpgSession
from txnlab.runner.drivers.psycopg2 import Psycopg2Session

NOTICES = {
    "detail-and-hint": "DO $$BEGIN RAISE WARNING 'low balance' USING DETAIL = 'balance 5', HINT = 'top up'; END$$",
    "hint-only": "DO $$BEGIN RAISE NOTICE 'n' USING HINT = 'h'; END$$",
    "plain": "DO $$BEGIN RAISE NOTICE 'just this'; END$$",
}


@pytest.mark.parametrize("kind", NOTICES)
def test_asyncpg_notices_carry_detail_and_hint_as_psycopg2s_do(scratch_dsn: str, kind: str) -> None:
    sessions = AsyncpgSession(scratch_dsn), Psycopg2Session(scratch_dsn)
    try:
        asyncpg_result, psycopg2_result = (session.execute(NOTICES[kind]) for session in sessions)
    finally:
        for session in sessions:
            session.close()
    assert psycopg2_result.notices  # the reference saw the notice
    assert asyncpg_result.notices == psycopg2_result.notices
