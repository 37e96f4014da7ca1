"""asyncpg never begins a transaction on its own; idle in transaction comes only from a transaction() left open.

The application's steps are asyncpg code run on the session's own connection (`async def`
functions, awaited on the session's event loop). The session is `autocommit: true`, so
txnlab adds nothing around them; its explicit BEGIN gets the run's level as the session's
default (SET SESSION CHARACTERISTICS), as a server's default_transaction_isolation would.
"""

from __future__ import annotations

import asyncpg

from _asyncpg_app import in_transaction

SELECT_BALANCE = "SELECT balance FROM accounts WHERE id = 1"
DBA_LOOK = (
    "SELECT a.state, l.mode\n"
    "  FROM pg_stat_activity a JOIN pg_locks l USING (pid)\n"
    " WHERE a.datname = current_database() AND l.relation = 'accounts'::regclass AND l.mode <> 'SIReadLock'"
)

SCENARIO = {
    "name": "asyncpg-no-implicit-begin",
    "title": "asyncpg sends no BEGIN: a SELECT commits at once; only an open transaction() leaves the session idle in transaction",
    "summary": (
        "The same reader as in psycopg2-implicit-begin, written with asyncpg. asyncpg never "
        "opens a transaction by itself: conn.fetchval() sends the SELECT alone (a Parse, since "
        "asyncpg prepares every statement) and the server runs it as a transaction of its own. "
        "Afterwards the session is plain idle, holds no lock, and a migration's ALTER TABLE goes "
        "through at once. Idle in transaction appears only when the application starts a "
        "transaction itself, with conn.transaction(): start() sends \"BEGIN;\" (asyncpg's own "
        "text, semicolon included), and from then on the SELECT's ACCESS SHARE lock is held "
        "until commit() sends \"COMMIT;\". In real code that is an `async with "
        "conn.transaction():` block that awaits something slow (an HTTP call) before it ends; "
        "here start() and commit() are split over steps so the state in between can be seen. "
        "The second SELECT is asyncpg's cached prepared statement run again: no second Parse, "
        "only a Bind, which the tap records with the statement's text. Table locks do not "
        "depend on the isolation level, so every level behaves the same."
    ),
    "tags": ["asyncpg", "driver", "implicit-transaction", "idle-in-transaction", "locks", "python"],
    "references": [
        "https://magicstack.github.io/asyncpg/current/api/index.html#transactions",
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.transaction",
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.is_in_transaction",
        "https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW",
        "https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-TABLES",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 250);"
    ),
    "sessions": {
        "app": {"driver": "asyncpg", "autocommit": True},
        "dba": {"autocommit": True},
        "migration": {},
    },
    "steps": [
        {"name": "app_fetch", "session": "app", "sql": f'await conn.fetchval("{SELECT_BALANCE}")',
         "narration": "asyncpg sends the SELECT alone, no BEGIN: the statement was its own transaction, "
                      "and the session is idle."},
        {"name": "dba_look", "session": "dba", "sql": DBA_LOOK,
         "narration": "Nobody holds a lock on accounts."},
        {"name": "migration_alter", "session": "migration", "sql": "ALTER TABLE accounts ADD COLUMN email text",
         "narration": "The migration gets ACCESS EXCLUSIVE at once."},
        {"name": "migration_commit", "session": "migration", "sql": "COMMIT"},
        {"name": "app_start", "session": "app", "sql": "tr = conn.transaction(); await tr.start()",
         "narration": "Now the application asks for a transaction: asyncpg sends \"BEGIN;\"."},
        {"name": "app_fetch_in_transaction", "session": "app", "sql": f'await conn.fetchval("{SELECT_BALANCE}")',
         "narration": "The same SELECT, inside the transaction (a Bind of the cached statement, no Parse). "
                      "The session stays idle in transaction, holding ACCESS SHARE on accounts."},
        {"name": "dba_look_again", "session": "dba", "sql": DBA_LOOK,
         "narration": "The DBA now sees the application idle in transaction, with its lock."},
        {"name": "migration_alter_again", "session": "migration",
         "sql": "ALTER TABLE accounts ADD COLUMN phone text",
         "narration": "The next migration waits for the application's transaction."},
        {"name": "app_commit", "session": "app", "sql": "await tr.commit()",
         "narration": "commit() sends \"COMMIT;\": the lock goes, and the ALTER gets its turn."},
        {"name": "migration_commit_again", "session": "migration", "sql": "COMMIT"},
    ],
    "expect": {
        "all": {
            "blocked": ["migration_alter_again"],
            "rows": {
                "app_fetch": [[100]],
                "dba_look": [],
                "app_start": [[{"is_in_transaction()": True}]],
                "app_fetch_in_transaction": [[100]],
                "dba_look_again": [["idle in transaction", "AccessShareLock"]],
                "app_commit": [[{"is_in_transaction()": False}]],
            },
            "sent": {
                "app_fetch": [SELECT_BALANCE],
                "app_start": ["BEGIN;"],
                "app_fetch_in_transaction": [SELECT_BALANCE],
                "app_commit": ["COMMIT;"],
            },
            "state": {
                "app_fetch": "idle",
                "app_start": "idle in transaction",
                "app_fetch_in_transaction": "idle in transaction",
                "app_commit": "idle",
            },
            "note": "the same at every level: asyncpg begins nothing by itself, and the ACCESS SHARE lock "
                    "an open transaction() keeps does not depend on the level",
        },
    },
}


def play(run) -> None:  # type: ignore[no-untyped-def]
    held = {}

    async def fetch(conn: asyncpg.Connection) -> object:
        return await conn.fetchval(SELECT_BALANCE)

    async def start(conn: asyncpg.Connection) -> dict[str, object]:
        held["tr"] = conn.transaction()
        await held["tr"].start()
        return {"is_in_transaction()": in_transaction(conn)}

    async def commit(conn: asyncpg.Connection) -> dict[str, object]:
        await held.pop("tr").commit()
        return {"is_in_transaction()": in_transaction(conn)}

    run.step("app_fetch", fetch)
    run.step("dba_look")
    run.step("migration_alter")
    run.step("migration_commit")
    run.step("app_start", start)
    run.step("app_fetch_in_transaction", fetch)
    run.step("dba_look_again")
    run.step("migration_alter_again")
    run.step("app_commit", commit)
    run.step("migration_commit_again")
