"""`async with conn.transaction():` commits or rolls back; the connection itself is no context manager.

The application's steps are asyncpg code on the session's own connection, awaited on its
event loop; the session is `autocommit: true`, so txnlab adds nothing around them.
"""

from __future__ import annotations

import asyncpg

from _asyncpg_app import in_transaction, qualified_name

DEPOSIT = "INSERT INTO ledger VALUES (1, 'deposit', 50)"
WITHDRAWAL = "INSERT INTO ledger VALUES (1, 'withdrawal', -500)"
FEE = "INSERT INTO ledger VALUES (1, 'fee', -1)"
COUNT = "SELECT count(*) AS ledger_rows FROM ledger"

SCENARIO = {
    "name": "asyncpg-async-with-transaction",
    "title": "asyncpg: `async with conn.transaction():` sends BEGIN; and COMMIT; or ROLLBACK;, and refuses what would break it",
    "summary": (
        "asyncpg's one context manager for transactions is conn.transaction(). When the block "
        "ends normally it sends \"COMMIT;\"; when an exception leaves it, \"ROLLBACK;\", and the "
        "exception goes on to the caller. The connection stays open either way. Unlike psycopg2 "
        "and psycopg 3 the connection is not a context manager at all: `async with conn:` is a "
        "TypeError and sends nothing. `async with conn.transaction() as tr:` binds None, so the "
        "Transaction must be named before the block to be used; calling its commit() inside the "
        "block raises InterfaceError (asyncpg refuses to end a transaction its block will end), "
        "and that exception rolls the block back. A transaction begun with plain SQL "
        "(conn.execute(\"BEGIN\")) makes conn.transaction() refuse to start: asyncpg sent the "
        "BEGIN itself but does not manage it, and the session stays idle in transaction until "
        "the application sends ROLLBACK. The isolation level changes none of this."
    ),
    "tags": ["asyncpg", "driver", "context-manager", "python"],
    "references": [
        "https://magicstack.github.io/asyncpg/current/api/index.html#transactions",
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.transaction",
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.transaction.Transaction",
        "https://www.postgresql.org/docs/current/sql-commit.html",
        "https://www.postgresql.org/docs/current/sql-rollback.html",
    ],
    "capture": True,
    "setup": "CREATE TABLE ledger (account_id int NOT NULL, type text NOT NULL, amount int NOT NULL);",
    "sessions": {
        "app": {"driver": "asyncpg", "autocommit": True},
        "teller": {"autocommit": True},
    },
    "steps": [
        {"name": "app_block_ok", "session": "app",
         "sql": f'async with conn.transaction(): await conn.execute("{DEPOSIT}")',
         "narration": "The block ends normally: \"BEGIN;\", the INSERT, \"COMMIT;\". The connection stays open."},
        {"name": "teller_after_ok", "session": "teller", "sql": COUNT},
        {"name": "app_block_raises", "session": "app",
         "sql": f'async with conn.transaction(): await conn.execute("{WITHDRAWAL}"); raise InsufficientFunds',
         "narration": "The application's own exception leaves the block: \"ROLLBACK;\", and the exception "
                      "reaches the caller."},
        {"name": "teller_after_raise", "session": "teller", "sql": COUNT},
        {"name": "app_async_with_conn", "session": "app", "sql": "async with conn: ...",
         "narration": "The connection is no context manager: TypeError, and nothing is sent."},
        {"name": "app_commit_inside", "session": "app",
         "sql": f'tr = conn.transaction(); async with tr: await conn.execute("{FEE}"); await tr.commit()',
         "narration": "commit() inside the block is refused with InterfaceError; the exception leaves the "
                      "block, which rolls back."},
        {"name": "app_sql_begin", "session": "app",
         "sql": 'await conn.execute("BEGIN"); async with conn.transaction(): ...',
         "narration": "After a BEGIN sent as SQL, transaction() refuses to start; the session is left idle "
                      "in transaction."},
        {"name": "app_sql_rollback", "session": "app", "sql": 'await conn.execute("ROLLBACK")'},
        {"name": "teller_at_end", "session": "teller", "sql": "SELECT type FROM ledger ORDER BY type"},
    ],
    "invariants": {
        "only_the_deposit_committed": "SELECT array_agg(type ORDER BY type) = '{deposit}' FROM ledger",
    },
    "expect": {
        "all": {
            "rows": {
                "app_block_ok": [[{"is_in_transaction()": False, "conn.is_closed()": False}]],
                "teller_after_ok": [[1]],
                "app_block_raises": [[{
                    "exception seen by the caller": "InsufficientFunds",
                    "is_in_transaction()": False,
                    "conn.is_closed()": False,
                }]],
                "teller_after_raise": [[1]],
                "app_async_with_conn": [[{"exception": "TypeError"}]],
                "app_commit_inside": [[{
                    "`as` target": None,
                    "exception seen by the caller": "asyncpg.exceptions._base.InterfaceError",
                    "message": "cannot manually commit from within an `async with` block",
                    "is_in_transaction()": False,
                }]],
                "app_sql_begin": [[{
                    "exception": "asyncpg.exceptions._base.InterfaceError",
                    "message": "cannot use Connection.transaction() in a manually started transaction",
                    "is_in_transaction()": True,
                }]],
                "teller_at_end": [["deposit"]],
            },
            "sent": {
                "app_block_ok": ["BEGIN;", DEPOSIT, "COMMIT;"],
                "app_block_raises": ["BEGIN;", WITHDRAWAL, "ROLLBACK;"],
                "app_async_with_conn": [],
                "app_commit_inside": ["BEGIN;", FEE, "ROLLBACK;"],
                "app_sql_begin": ["BEGIN"],
                "app_sql_rollback": ["ROLLBACK"],
            },
            "state": {
                "app_block_ok": "idle",
                "app_block_raises": "idle",
                "app_commit_inside": "idle",
                "app_sql_begin": "idle in transaction",
                "app_sql_rollback": "idle",
            },
            "invariants": {"only_the_deposit_committed": True},
            "note": "the same at every level: the block decides when asyncpg sends COMMIT; or ROLLBACK;, which "
                    "the isolation level does not change",
        },
    },
}


class InsufficientFunds(Exception):
    """The application's own reason to abandon a withdrawal."""


def play(run) -> None:  # type: ignore[no-untyped-def]
    async def block_ok(conn: asyncpg.Connection) -> dict[str, object]:
        async with conn.transaction():
            await conn.execute(DEPOSIT)
        return {"is_in_transaction()": in_transaction(conn), "conn.is_closed()": conn.is_closed()}

    async def block_raises(conn: asyncpg.Connection) -> dict[str, object]:
        try:
            async with conn.transaction():
                await conn.execute(WITHDRAWAL)
                raise InsufficientFunds("balance too low for 500")
        except InsufficientFunds as exc:
            seen = type(exc).__name__
        return {"exception seen by the caller": seen, "is_in_transaction()": in_transaction(conn),
                "conn.is_closed()": conn.is_closed()}

    async def with_conn(conn: asyncpg.Connection) -> dict[str, object]:
        try:
            async with conn:  # type: ignore[attr-defined]
                pass
        except TypeError as exc:
            return {"exception": type(exc).__name__}
        return {"exception": None}

    async def commit_inside(conn: asyncpg.Connection) -> dict[str, object]:
        tr = conn.transaction()
        try:
            async with tr as target:
                await conn.execute(FEE)
                await tr.commit()
        except asyncpg.InterfaceError as exc:
            seen, message = qualified_name(exc), str(exc)
        return {"`as` target": target, "exception seen by the caller": seen, "message": message,
                "is_in_transaction()": in_transaction(conn)}

    async def sql_begin(conn: asyncpg.Connection) -> dict[str, object]:
        await conn.execute("BEGIN")
        try:
            async with conn.transaction():
                await conn.execute(FEE)
        except asyncpg.InterfaceError as exc:
            return {"exception": qualified_name(exc), "message": str(exc),
                    "is_in_transaction()": in_transaction(conn)}
        return {"exception": None}

    async def sql_rollback(conn: asyncpg.Connection) -> None:
        await conn.execute("ROLLBACK")

    run.step("app_block_ok", block_ok)
    run.step("teller_after_ok")
    run.step("app_block_raises", block_raises)
    run.step("teller_after_raise")
    run.step("app_async_with_conn", with_conn)
    run.step("app_commit_inside", commit_inside)
    run.step("app_sql_begin", sql_begin)
    run.step("app_sql_rollback", sql_rollback)
    run.step("teller_at_end")
