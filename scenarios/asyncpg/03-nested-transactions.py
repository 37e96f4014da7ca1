"""asyncpg's nested `async with conn.transaction():` is a SAVEPOINT: a failure inside undoes only the nested block.

The application's steps are asyncpg code on the session's own connection, awaited on its
event loop; the session is `autocommit: true`, so txnlab adds nothing around them.
asyncpg names each savepoint from a counter shared by the whole process
(`__asyncpg_savepoint_<hex>__`), so `sent:` writes it `__asyncpg_savepoint_N__`.
"""

from __future__ import annotations

import asyncpg

from _asyncpg_app import in_transaction, qualified_name

ATTEMPT = "INSERT INTO ledger VALUES (1, 'attempt', 130)"
WITHDRAW = "UPDATE accounts SET balance = balance - 130 WHERE id = 1"
DECLINED = "INSERT INTO ledger VALUES (1, 'declined', 0)"
SAVEPOINT = "__asyncpg_savepoint_N__"

SCENARIO = {
    "name": "asyncpg-nested-transactions",
    "title": "asyncpg: a nested transaction() is a SAVEPOINT; its failure rolls back to it and the outer transaction commits",
    "summary": (
        "psycopg2-savepoint-recovery with asyncpg, where savepoints need no SQL: a "
        "conn.transaction() entered while another is open sends \"SAVEPOINT "
        "__asyncpg_savepoint_<n>__;\" (n from a counter shared by the whole process, so the "
        "name differs from run to run). The ATM opens a transaction and records the attempt. "
        "The withdrawal runs in a nested `async with conn.transaction():`; it breaks CHECK "
        "(balance >= 0), and leaving the block sends \"ROLLBACK TO __asyncpg_savepoint_<n>__;\" "
        "(no RELEASE follows; the savepoint ends with the transaction). Only the withdrawal is "
        "undone: the transaction is usable again, no 25P02, and the server shows it idle in "
        "transaction, not aborted. A second nested block that succeeds ends with \"RELEASE "
        "SAVEPOINT ...;\". The outer commit() sends \"COMMIT;\" and both ledger lines are "
        "kept. Savepoints behave the same at every isolation level."
    ),
    "tags": ["asyncpg", "driver", "savepoint", "error-handling", "python"],
    "references": [
        "https://magicstack.github.io/asyncpg/current/api/index.html#transactions",
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.transaction",
        "https://www.postgresql.org/docs/current/sql-savepoint.html",
        "https://www.postgresql.org/docs/current/sql-rollback-to.html",
        "https://www.postgresql.org/docs/current/sql-release-savepoint.html",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL,\n"
        "                       balance numeric NOT NULL CONSTRAINT positive_balance CHECK (balance >= 0));\n"
        "CREATE TABLE ledger (account_id int NOT NULL REFERENCES accounts, type text NOT NULL, amount numeric NOT NULL);\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100);"
    ),
    "sessions": {
        "atm": {"driver": "asyncpg", "autocommit": True},
        "teller": {"autocommit": True},
    },
    "steps": [
        {"name": "atm_start", "session": "atm",
         "sql": f'tr = conn.transaction(); await tr.start(); await conn.execute("{ATTEMPT}")',
         "narration": "The outer transaction: \"BEGIN;\" and the attempt's ledger line."},
        {"name": "atm_nested_fails", "session": "atm",
         "sql": f'async with conn.transaction(): await conn.execute("{WITHDRAW}")',
         "narration": "The nested block is a SAVEPOINT. The overdraft fails; leaving the block sends ROLLBACK "
                      "TO the savepoint, and the caller gets the exception."},
        {"name": "atm_nested_ok", "session": "atm",
         "sql": f'async with conn.transaction(): await conn.execute("{DECLINED}")',
         "narration": "The transaction works again: a second nested block records the refusal and ends with "
                      "RELEASE SAVEPOINT."},
        {"name": "teller_during", "session": "teller", "sql": "SELECT count(*) AS ledger_rows FROM ledger",
         "narration": "Nothing is committed yet."},
        {"name": "atm_commit", "session": "atm", "sql": "await tr.commit()",
         "narration": "\"COMMIT;\": the attempt and the refusal are kept, the withdrawal is not."},
        {"name": "teller_after", "session": "teller", "sql": "SELECT type FROM ledger ORDER BY type"},
    ],
    "invariants": {
        "balance_unchanged": "SELECT balance = 100 FROM accounts WHERE id = 1",
    },
    "expect": {
        "all": {
            "rows": {
                "atm_nested_fails": [[{
                    "exception seen by the caller": "asyncpg.exceptions.CheckViolationError",
                    "is_in_transaction()": True,
                }]],
                "teller_during": [[0]],
                "teller_after": [["attempt"], ["declined"]],
            },
            "sent": {
                "atm_start": ["BEGIN;", ATTEMPT],
                "atm_nested_fails": [f"SAVEPOINT {SAVEPOINT};", WITHDRAW, f"ROLLBACK TO {SAVEPOINT};"],
                "atm_nested_ok": [f"SAVEPOINT {SAVEPOINT};", DECLINED, f"RELEASE SAVEPOINT {SAVEPOINT};"],
                "atm_commit": ["COMMIT;"],
            },
            "state": {
                "atm_start": "idle in transaction",
                "atm_nested_fails": "idle in transaction",
                "atm_nested_ok": "idle in transaction",
                "atm_commit": "idle",
            },
            "invariants": {"balance_unchanged": True},
            "note": "the same at every level: ROLLBACK TO a savepoint undoes only what followed it, whatever "
                    "the level",
        },
    },
}


def play(run) -> None:  # type: ignore[no-untyped-def]
    held = {}

    async def start(conn: asyncpg.Connection) -> None:
        held["tr"] = conn.transaction()
        await held["tr"].start()
        await conn.execute(ATTEMPT)

    async def nested_withdraw(conn: asyncpg.Connection) -> dict[str, object]:
        try:
            async with conn.transaction():
                await conn.execute(WITHDRAW)
        except asyncpg.PostgresError as exc:
            seen = qualified_name(exc)
        return {"exception seen by the caller": seen, "is_in_transaction()": in_transaction(conn)}

    async def nested_declined(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute(DECLINED)

    async def commit(conn: asyncpg.Connection) -> None:
        await held.pop("tr").commit()

    run.step("atm_start", start)
    run.step("atm_nested_fails", nested_withdraw)
    run.step("atm_nested_ok", nested_declined)
    run.step("teller_during")
    run.step("atm_commit", commit)
    run.step("teller_after")
