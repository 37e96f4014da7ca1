"""asyncpg's pool resets a released connection: ROLLBACK if a transaction is open, then one query that frees advisory locks, cursors, LISTENs and settings.

The pool lives on the app session's event loop (each step's coroutine is awaited there), and
its connection goes through the wire tap, so each step's "sent" shows what the pool sent.
A dba session reads the server's view of the pool's backend (found by its application_name).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from _asyncpg_app import in_transaction, pool_arguments

ORDER = "INSERT INTO orders VALUES (1, 'forgotten')"
PAID = "INSERT INTO orders VALUES (2, 'paid')"
RESET_QUERY = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;"
DBA_LOOK = (
    "SELECT a.state,\n"
    "       (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory') AS advisory_locks\n"
    "  FROM pg_stat_activity a WHERE a.datname = current_database() AND a.application_name = 'orders_pool'"
)

SCENARIO = {
    "name": "asyncpg-pool-release-reset",
    "title": "asyncpg's pool: release() rolls back a forgotten transaction, then resets the session in one query (advisory locks, cursors, LISTEN, settings)",
    "summary": (
        "A handler takes a connection from an asyncpg pool, sets lock_timeout, takes a "
        "session-level advisory lock, starts a transaction and inserts an order, then gives the "
        "connection back without committing. The server shows the pool's backend idle in "
        "transaction with the advisory lock. pool.release() sends ROLLBACK (plain SQL, no "
        "semicolon: asyncpg's reset, not the Transaction's rollback), and asyncpg complains "
        "through the event loop's exception handler (\"Resetting connection with an active "
        "transaction\"; here a handler records it). Then, on every release, one Query message "
        "with four statements: SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET "
        "ALL;. The order is gone, the advisory lock is released (psycopg2's and psycopg 3's "
        "pools only roll back: a session-level lock would outlive the return there), and the "
        "next acquire() finds lock_timeout back at its default. The idiomatic `async with "
        "pool.acquire() as conn: async with conn.transaction():` commits and the reset query "
        "follows all the same. The pool's connection runs at the server's default level "
        "(READ COMMITTED) whatever the run's level, so every level behaves the same."
    ),
    "tags": ["asyncpg", "driver", "pool", "rollback", "python"],
    "references": [
        "https://magicstack.github.io/asyncpg/current/api/index.html#connection-pools",
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.pool.Pool.release",
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.reset",
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.get_reset_query",
        "https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS",
        "https://www.postgresql.org/docs/current/sql-reset.html",
    ],
    "capture": True,
    "setup": "CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL);",
    "sessions": {
        "app": {"driver": "asyncpg", "autocommit": True},
        "dba": {"autocommit": True},
    },
    "steps": [
        {"name": "app_create_pool", "session": "app",
         "sql": "pool = await asyncpg.create_pool(..., min_size=1, max_size=1, server_settings={'application_name': 'orders_pool'})",
         "narration": "The pool opens its one connection; nothing is sent after the startup."},
        {"name": "app_acquire", "session": "app",
         "sql": "conn = await pool.acquire(); await conn.execute(\"SET lock_timeout = '1s'\"); "
                "await conn.execute(\"SELECT pg_advisory_lock(42)\")",
         "narration": "The handler changes a setting and takes a session-level advisory lock."},
        {"name": "app_forget", "session": "app",
         "sql": f'tr = conn.transaction(); await tr.start(); await conn.execute("{ORDER}")  # no commit',
         "narration": "A transaction the handler will never end."},
        {"name": "dba_look", "session": "dba", "sql": DBA_LOOK,
         "narration": "The pool's backend: idle in transaction, holding the advisory lock."},
        {"name": "app_release", "session": "app", "sql": "await pool.release(conn)",
         "narration": "ROLLBACK, then the reset query: four statements in one message."},
        {"name": "dba_look_again", "session": "dba", "sql": DBA_LOOK,
         "narration": "Idle, and the advisory lock is gone."},
        {"name": "app_acquire_again", "session": "app",
         "sql": 'conn = await pool.acquire(); await conn.fetchval("SHOW lock_timeout"); await pool.release(conn)',
         "narration": "The same backend, with lock_timeout back at its default; the release sends the reset "
                      "query again, with no transaction to roll back."},
        {"name": "app_async_with", "session": "app",
         "sql": f'async with pool.acquire() as conn: async with conn.transaction(): await conn.execute("{PAID}")',
         "narration": "The idiomatic form: BEGIN;, the INSERT, COMMIT;, and the reset query on release."},
        {"name": "app_close_pool", "session": "app", "sql": "await pool.close()"},
    ],
    "invariants": {
        "only_the_paid_order": "SELECT array_agg(note) = '{paid}' FROM orders",
    },
    "expect": {
        "all": {
            "rows": {
                "app_acquire": [[{"is_in_transaction()": False}]],
                "dba_look": [["idle in transaction", 1]],
                "app_release": [[{"asyncio exception handler": ["Resetting connection with an active transaction"]}]],
                "dba_look_again": [["idle", 0]],
                "app_acquire_again": [[{"the same backend": True, "lock_timeout": "0"}]],
            },
            "sent": {
                "app_create_pool": [],
                "app_acquire": ["SET lock_timeout = '1s'", "SELECT pg_advisory_lock(42)"],
                "app_forget": ["BEGIN;", ORDER],
                "app_release": ["ROLLBACK", RESET_QUERY],
                "app_acquire_again": ["SHOW lock_timeout", RESET_QUERY],
                "app_async_with": ["BEGIN;", PAID, "COMMIT;", RESET_QUERY],
                "app_close_pool": [],
            },
            "invariants": {"only_the_paid_order": True},
            "note": "the same at every level: the pool's connection runs at the server's default level, and "
                    "release() resets it whatever the level",
        },
    },
}


def play(run) -> None:  # type: ignore[no-untyped-def]
    held: dict[str, Any] = {}
    arguments = pool_arguments(run.dsn)
    arguments["server_settings"] = {**arguments.get("server_settings", {}), "application_name": "orders_pool"}

    async def create_pool(_own: asyncpg.Connection) -> None:
        held["pool"] = await asyncpg.create_pool(**arguments, min_size=1, max_size=1)

    async def acquire(_own: asyncpg.Connection) -> dict[str, object]:
        conn = held["conn"] = await held["pool"].acquire()
        held["pid"] = conn.get_server_pid()
        await conn.execute("SET lock_timeout = '1s'")
        await conn.execute("SELECT pg_advisory_lock(42)")
        return {"is_in_transaction()": in_transaction(conn)}

    async def forget(_own: asyncpg.Connection) -> None:
        conn = held["conn"]
        await conn.transaction().start()
        await conn.execute(ORDER)

    async def release(_own: asyncpg.Connection) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        previous, reported = loop.get_exception_handler(), []
        loop.set_exception_handler(lambda _loop, context: reported.append(context["message"].split(" <")[0]))
        try:
            await held["pool"].release(held.pop("conn"))
        finally:
            loop.set_exception_handler(previous)
        return {"asyncio exception handler": reported}

    async def acquire_again(_own: asyncpg.Connection) -> dict[str, object]:
        conn = await held["pool"].acquire()
        try:
            return {"the same backend": conn.get_server_pid() == held["pid"],
                    "lock_timeout": await conn.fetchval("SHOW lock_timeout")}
        finally:
            await held["pool"].release(conn)

    async def async_with(_own: asyncpg.Connection) -> None:
        async with held["pool"].acquire() as conn:
            async with conn.transaction():
                await conn.execute(PAID)

    async def close_pool(_own: asyncpg.Connection) -> None:
        await held.pop("pool").close()

    run.step("app_create_pool", create_pool)
    run.step("app_acquire", acquire)
    run.step("app_forget", forget)
    run.step("dba_look")
    run.step("app_release", release)
    run.step("dba_look_again")
    run.step("app_acquire_again", acquire_again)
    run.step("app_async_with", async_with)
    run.step("app_close_pool", close_pool)
