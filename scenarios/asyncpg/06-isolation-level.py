"""asyncpg: the isolation level is an argument of transaction(), sent in its BEGIN; the snapshot comes with the first statement.

The application's steps are asyncpg code on the session's own connection, awaited on its
event loop; the session is `autocommit: true`, so txnlab adds nothing around them, and its
default level (SET SESSION CHARACTERISTICS) is the run's: a plain "BEGIN;" runs at it, as
it would at a server whose default_transaction_isolation is that level.
"""

from __future__ import annotations

import asyncpg

from _asyncpg_app import in_transaction, qualified_name

BALANCE = "SELECT balance FROM accounts WHERE id = 1"
SHOW = "SHOW transaction_isolation"
LEVELS = {"ru": "READ UNCOMMITTED", "rc": "READ COMMITTED", "rr": "REPEATABLE READ", "ser": "SERIALIZABLE"}
SET_LATE = "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"

SCENARIO = {
    "name": "asyncpg-isolation-level",
    "title": "asyncpg: transaction(isolation=...) names the level in its BEGIN; a nested transaction() with another level is refused by asyncpg, a late SET TRANSACTION by the server",
    "summary": (
        "With asyncpg the level is chosen per transaction: conn.transaction(isolation="
        "\"repeatable_read\") sends \"BEGIN ISOLATION LEVEL REPEATABLE READ;\" (without "
        "isolation, a plain \"BEGIN;\" and the session's default). The level is fixed by the "
        "BEGIN, but the snapshot is not: it is taken by the transaction's first statement. A "
        "teller's deposit committed after the BEGIN and before the first SELECT is seen at "
        "every level; the teller's second deposit, committed after that SELECT, is seen again "
        "only at READ COMMITTED (and READ UNCOMMITTED, which PostgreSQL runs as READ COMMITTED "
        "although SHOW names it). Changing the level once a transaction runs fails two "
        "different ways. A nested conn.transaction(isolation=\"serializable\") inside a "
        "transaction begun without isolation makes asyncpg ask the server first (\"SHOW "
        "transaction_isolation;\" on the wire) and then refuse on the client with "
        "InterfaceError when the levels differ; at SERIALIZABLE they agree and it becomes a "
        "plain SAVEPOINT. SET TRANSACTION ISOLATION LEVEL SERIALIZABLE sent after a query is "
        "refused by the server (25001), except where the transaction already is serializable."
    ),
    "tags": ["asyncpg", "driver", "isolation-level", "snapshot", "python"],
    "references": [
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.transaction",
        "https://magicstack.github.io/asyncpg/current/api/index.html#transactions",
        "https://www.postgresql.org/docs/current/sql-set-transaction.html",
        "https://www.postgresql.org/docs/current/transaction-iso.html",
    ],
    "capture": True,
    "setup": "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);\nINSERT INTO accounts VALUES (1, 100);",
    "sessions": {
        "app": {"driver": "asyncpg", "autocommit": True},
        "teller": {"autocommit": True},
    },
    "steps": [
        {"name": "app_begin", "session": "app", "sql": "tr = conn.transaction(isolation=<the run's level>); await tr.start()",
         "narration": "asyncpg names the level in its BEGIN. No statement has run: there is no snapshot yet."},
        {"name": "teller_deposit", "session": "teller", "sql": "UPDATE accounts SET balance = balance + 50 WHERE id = 1",
         "narration": "A deposit committed after the BEGIN."},
        {"name": "app_first_read", "session": "app", "sql": f'await conn.fetchval("{BALANCE}")',
         "narration": "The first statement takes the snapshot: it sees the deposit at every level."},
        {"name": "teller_deposit_again", "session": "teller",
         "sql": "UPDATE accounts SET balance = balance + 50 WHERE id = 1"},
        {"name": "app_second_read", "session": "app", "sql": f'await conn.fetchval("{BALANCE}")',
         "narration": "READ COMMITTED takes a new snapshot per statement; REPEATABLE READ and SERIALIZABLE "
                      "keep the first."},
        {"name": "app_show", "session": "app", "sql": f'await conn.fetchval("{SHOW}")'},
        {"name": "app_commit", "session": "app", "sql": "await tr.commit()"},
        {"name": "app_nested_level", "session": "app",
         "sql": 'async with conn.transaction(): async with conn.transaction(isolation="serializable"): ...',
         "narration": "asyncpg asks the server the outer level, then refuses a different one itself; the "
                      "refusal leaves the outer block, which rolls back."},
        {"name": "app_set_late", "session": "app",
         "sql": f'async with conn.transaction(): await conn.fetchval("{BALANCE}"); await conn.execute("{SET_LATE}")',
         "narration": "After a query, the server refuses to change the level (unless it is already that level)."},
    ],
    "expect": {},
}


def _expectation(short: str) -> dict[str, object]:
    """The run at one level (`ru`, `rc`, `rr`, `ser`)."""
    level = LEVELS[short]
    new_snapshot_each_statement = short in ("ru", "rc")
    serializable = short == "ser"
    expectation: dict[str, object] = {
        "rows": {
            "app_first_read": [[150]],
            "app_second_read": [[200 if new_snapshot_each_statement else 150]],
            "app_show": [[level.lower()]],
            "app_nested_level": [[
                {"exception": None, "is_in_transaction()": False} if serializable else {
                    "exception": "asyncpg.exceptions._base.InterfaceError",
                    # asyncpg's words: "current" is the nested transaction's level, "outer" the BEGIN's
                    "message": "nested transaction has a different isolation level: current 'serializable' "
                               f"!= outer '{level.lower().replace(' ', '_')}'",
                    "is_in_transaction()": False,
                }
            ]],
        },
        "sent": {
            "app_begin": [f"BEGIN ISOLATION LEVEL {level};"],
            "app_first_read": [BALANCE],
            "app_commit": ["COMMIT;"],
            "app_nested_level": (
                ["BEGIN;", "SHOW transaction_isolation;", "SAVEPOINT __asyncpg_savepoint_N__;",
                 "RELEASE SAVEPOINT __asyncpg_savepoint_N__;", "COMMIT;"]
                if serializable else ["BEGIN;", "SHOW transaction_isolation;", "ROLLBACK;"]
            ),
            "app_set_late": ["BEGIN;", BALANCE, SET_LATE, "COMMIT;" if serializable else "ROLLBACK;"],
        },
        "state": {"app_begin": "idle in transaction", "app_commit": "idle", "app_nested_level": "idle",
                  "app_set_late": "idle"},
        "note": (
            "the level is the run's, named in asyncpg's BEGIN; the snapshot is taken by the first SELECT, "
            + ("and a later SET TRANSACTION to the same level is accepted" if serializable
               else "and the server refuses a later SET TRANSACTION with 25001")
        ),
    }
    if not serializable:
        expectation["errors"] = {"app_set_late": "25001"}
    return expectation


SCENARIO["expect"] = {short: _expectation(short) for short in LEVELS}


def play(run) -> None:  # type: ignore[no-untyped-def]
    isolation = run.level.value.replace(" ", "_")  # asyncpg's name for the run's level
    held = {}

    async def begin(conn: asyncpg.Connection) -> None:
        held["tr"] = conn.transaction(isolation=isolation)
        await held["tr"].start()

    def fetchval(sql: str):  # type: ignore[no-untyped-def]
        async def step(conn: asyncpg.Connection) -> object:
            return await conn.fetchval(sql)
        return step

    async def commit(conn: asyncpg.Connection) -> None:
        await held.pop("tr").commit()

    async def nested_level(conn: asyncpg.Connection) -> dict[str, object]:
        outcome: dict[str, object] = {"exception": None}
        try:
            async with conn.transaction():
                async with conn.transaction(isolation="serializable"):
                    pass
        except asyncpg.InterfaceError as exc:
            outcome = {"exception": qualified_name(exc), "message": str(exc)}
        return {**outcome, "is_in_transaction()": in_transaction(conn)}

    async def set_late(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.fetchval(BALANCE)
            await conn.execute(SET_LATE)

    run.step("app_begin", begin)
    run.step("teller_deposit")
    run.step("app_first_read", fetchval(BALANCE))
    run.step("teller_deposit_again")
    run.step("app_second_read", fetchval(BALANCE))
    run.step("app_show", fetchval(SHOW))
    run.step("app_commit", commit)
    run.step("app_nested_level", nested_level)
    run.step("app_set_late", set_late)
