"""A failed statement inside an asyncpg transaction: 25P02 after it, and commit() quietly rolls back.

The application's steps are asyncpg code on the session's own connection, awaited on its
event loop; the session is `autocommit: true`, so txnlab adds nothing around them.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from _asyncpg_app import in_transaction, qualified_name

LEDGER = "INSERT INTO ledger VALUES (1, 'debit', 130)"
WITHDRAW = "UPDATE accounts SET balance = balance - 130 WHERE id = 1"
BALANCE = "SELECT balance FROM accounts WHERE id = 1"

SCENARIO = {
    "name": "asyncpg-failed-transaction",
    "title": "asyncpg: after a failed statement every command fails with 25P02, and commit() rolls back without a word",
    "summary": (
        "The ATM of psycopg2-failed-transaction, with asyncpg. Outside a transaction a failing "
        "statement is only itself: asyncpg began nothing, so the next statement runs. Inside "
        "conn.transaction() (started by hand: tr.start()) the overdraft breaks CHECK (balance >= "
        "0) and raises asyncpg's CheckViolationError (23514); the server now rejects every "
        "statement with 25P02 (InFailedSQLTransactionError) and shows the session idle in "
        "transaction (aborted), while asyncpg's is_in_transaction() still says True. Then "
        "tr.commit(): asyncpg sends \"COMMIT;\", the server answers ROLLBACK, and asyncpg raises "
        "nothing: the ledger line written before the failure is gone, which the teller sees. "
        "The same withdrawal in `async with conn.transaction():` ends better: the exception "
        "leaves the block, asyncpg sends \"ROLLBACK;\" and the exception reaches the caller. "
        "None of this depends on the isolation level."
    ),
    "tags": ["asyncpg", "driver", "error-handling", "rollback", "python"],
    "references": [
        "https://magicstack.github.io/asyncpg/current/api/index.html#transactions",
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.transaction.Transaction.commit",
        "https://www.postgresql.org/docs/current/sql-commit.html",
        "https://www.postgresql.org/docs/current/errcodes-appendix.html",
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
        {"name": "atm_withdraw_alone", "session": "atm", "sql": f'await conn.execute("{WITHDRAW}")',
         "narration": "No transaction: the UPDATE fails (23514) and undoes only itself."},
        {"name": "atm_balance_alone", "session": "atm", "sql": f'await conn.fetchval("{BALANCE}")',
         "narration": "Nothing is poisoned: the next statement runs."},
        {"name": "atm_start", "session": "atm", "sql": "tr = conn.transaction(); await tr.start()",
         "narration": "Now inside a transaction: \"BEGIN;\"."},
        {"name": "atm_ledger", "session": "atm", "sql": f'await conn.execute("{LEDGER}")'},
        {"name": "atm_withdraw", "session": "atm", "sql": f'await conn.execute("{WITHDRAW}")',
         "narration": "The overdraft fails: the transaction is aborted (the server: idle in transaction (aborted))."},
        {"name": "atm_balance", "session": "atm", "sql": f'await conn.fetchval("{BALANCE}")',
         "narration": "Every statement now fails with 25P02, even a SELECT."},
        {"name": "atm_commit", "session": "atm", "sql": "await tr.commit()",
         "narration": "asyncpg sends \"COMMIT;\"; the server rolls back instead, and asyncpg raises nothing."},
        {"name": "teller_ledger", "session": "teller", "sql": "SELECT count(*) AS ledger_rows FROM ledger",
         "narration": "The ledger line written before the failure was never committed."},
        {"name": "atm_withdraw_in_block", "session": "atm",
         "sql": f'async with conn.transaction(): await conn.execute("{LEDGER}"); await conn.execute("{WITHDRAW}")',
         "narration": "The same withdrawal in an `async with` block: the exception leaves the block, asyncpg "
                      "sends \"ROLLBACK;\", and the caller gets the exception."},
    ],
    "invariants": {
        "ledger_empty": "SELECT count(*) = 0 FROM ledger",
        "balance_unchanged": "SELECT balance = 100 FROM accounts WHERE id = 1",
    },
    "expect": {
        "all": {
            "errors": {"atm_withdraw_alone": "23514", "atm_withdraw": "23514", "atm_balance": "25P02"},
            "rows": {
                "atm_balance_alone": [[Decimal("100")]],  # numeric, as asyncpg decodes it
                "atm_commit": [[{"commit() raised": None, "is_in_transaction()": False}]],
                "teller_ledger": [[0]],
                "atm_withdraw_in_block": [[{
                    "exception seen by the caller": "asyncpg.exceptions.CheckViolationError",
                    "is_in_transaction()": False,
                }]],
            },
            "sent": {
                "atm_withdraw_alone": [WITHDRAW],
                "atm_balance_alone": [BALANCE],
                "atm_start": ["BEGIN;"],
                "atm_ledger": [LEDGER],
                "atm_withdraw": [WITHDRAW],
                "atm_balance": [BALANCE],
                "atm_commit": ["COMMIT;"],
                "atm_withdraw_in_block": ["BEGIN;", LEDGER, WITHDRAW, "ROLLBACK;"],
            },
            "state": {
                "atm_withdraw_alone": "idle",
                "atm_ledger": "idle in transaction",
                "atm_withdraw": "idle in transaction (aborted)",
                "atm_balance": "idle in transaction (aborted)",
                "atm_commit": "idle",
                "atm_withdraw_in_block": "idle",
            },
            "invariants": {"ledger_empty": True, "balance_unchanged": True},
            "note": "the same at every level: an error aborts the whole transaction, and COMMIT of an aborted "
                    "transaction is answered ROLLBACK, which asyncpg does not report",
        },
    },
}


def play(run) -> None:  # type: ignore[no-untyped-def]
    held = {}

    def execute(sql: str):  # type: ignore[no-untyped-def]
        async def step(conn: asyncpg.Connection) -> None:
            await conn.execute(sql)
        return step

    async def balance(conn: asyncpg.Connection) -> object:
        return await conn.fetchval(BALANCE)

    async def start(conn: asyncpg.Connection) -> None:
        held["tr"] = conn.transaction()
        await held["tr"].start()

    async def commit(conn: asyncpg.Connection) -> dict[str, object]:
        try:
            await held.pop("tr").commit()
            raised = None
        except asyncpg.PostgresError as exc:
            raised = qualified_name(exc)
        return {"commit() raised": raised, "is_in_transaction()": in_transaction(conn)}

    async def withdraw_in_block(conn: asyncpg.Connection) -> dict[str, object]:
        try:
            async with conn.transaction():
                await conn.execute(LEDGER)
                await conn.execute(WITHDRAW)
        except asyncpg.PostgresError as exc:
            seen = qualified_name(exc)
        return {"exception seen by the caller": seen, "is_in_transaction()": in_transaction(conn)}

    run.step("atm_withdraw_alone", execute(WITHDRAW))
    run.step("atm_balance_alone", balance)
    run.step("atm_start", start)
    run.step("atm_ledger", execute(LEDGER))
    run.step("atm_withdraw", execute(WITHDRAW))
    run.step("atm_balance", balance)
    run.step("atm_commit", commit)
    run.step("teller_ledger")
    run.step("atm_withdraw_in_block", withdraw_in_block)
