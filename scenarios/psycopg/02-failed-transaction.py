"""psycopg 3 after a failed statement: 25P02 until the transaction ends; commit() rolls back.

A Python scenario, because the lesson is what psycopg 3's API does: the exceptions it
raises (psycopg.errors.*), what commit() does in a failed transaction, and how a
`with conn.transaction():` block recovers by itself.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import psycopg.errors

from _psycopg_app import LEVELS, begin, qualified_name, status

LEDGER = "INSERT INTO ledger VALUES (%s, %s, %s)"
WITHDRAW = "UPDATE accounts SET balance = balance - %s WHERE id = %s"

SCENARIO = {
    "name": "psycopg-failed-transaction",
    "title": "psycopg 3: after an error every statement fails with 25P02, commit() silently rolls back, a transaction() block rolls back for you",
    "summary": (
        "The ATM of psycopg2-failed-transaction with psycopg 3. The withdrawal's ledger line "
        "goes in, then the UPDATE breaks CHECK (balance >= 0): psycopg 3 raises "
        "psycopg.errors.CheckViolation (23514) and the transaction is aborted. The next "
        "statement raises InFailedSqlTransaction (25P02) and conn.info.transaction_status says "
        "INERROR. conn.commit() then raises nothing: psycopg 3 sends COMMIT and the server, "
        "which cannot commit an aborted transaction, answers ROLLBACK; the ledger line is gone. "
        "The same withdrawal inside `with conn.transaction():` ends differently: the exception "
        "leaving the block makes psycopg 3 send ROLLBACK itself before re-raising, so the "
        "connection is idle and usable at once. None of this depends on the isolation level."
    ),
    "tags": ["psycopg", "driver", "error-handling", "rollback", "python"],
    "references": [
        "https://www.psycopg.org/psycopg3/docs/basic/transactions.html",
        "https://www.psycopg.org/psycopg3/docs/api/connections.html#psycopg.Connection.commit",
        "https://www.psycopg.org/psycopg3/docs/api/connections.html#psycopg.Connection.transaction",
        "https://www.psycopg.org/psycopg3/docs/api/errors.html",
        "https://www.postgresql.org/docs/current/sql-commit.html",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL,\n"
        "                       balance numeric NOT NULL CONSTRAINT positive_balance CHECK (balance >= 0));\n"
        "CREATE TABLE ledger (account_id int NOT NULL REFERENCES accounts, type text NOT NULL, amount numeric NOT NULL);\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100);"
    ),
    "sessions": {"atm": {"driver": "psycopg"}, "teller": {"autocommit": True}},
    "steps": [
        {"name": "atm_ledger", "session": "atm", "sql": f'conn.execute("{LEDGER}", [1, "debit", 130])',
         "narration": "psycopg 3 opens the transaction (BEGIN) and writes the ledger line."},
        {"name": "atm_withdraw", "session": "atm", "sql": f'conn.execute("{WITHDRAW}", [130, 1])',
         "narration": "100 - 130 breaks the CHECK: psycopg.errors.CheckViolation, and the transaction is aborted."},
        {"name": "atm_balance", "session": "atm", "sql": 'conn.execute("SELECT balance FROM accounts WHERE id = %s", [1])',
         "narration": "The application caught the exception and goes on: every statement now fails with 25P02."},
        {"name": "atm_commit", "session": "atm", "sql": "conn.commit()",
         "narration": "No exception: psycopg 3 sends COMMIT and the server answers ROLLBACK."},
        {"name": "teller_ledger", "session": "teller", "sql": "SELECT count(*) AS ledger_rows FROM ledger",
         "narration": "The ledger line written before the failure was never committed."},
        {"name": "atm_block", "session": "atm",
         "sql": f'with conn.transaction(): conn.execute("{LEDGER}", ...); conn.execute("{WITHDRAW}", ...)',
         "narration": "The same withdrawal in a transaction() block: the CheckViolation leaves the block, "
                      "psycopg 3 sends ROLLBACK before re-raising, and the connection is idle again."},
        {"name": "atm_balance_again", "session": "atm",
         "sql": 'conn.execute("SELECT balance FROM accounts WHERE id = %s", [1])',
         "narration": "The connection works at once, in a new transaction."},
    ],
    "invariants": {
        "no_ledger_line": "SELECT count(*) = 0 FROM ledger",
        "balance_unchanged": "SELECT balance = 100 FROM accounts WHERE id = 1",
    },
    "expect": {},  # per level, below: only the level named in the BEGIN differs
}


def expectation(level: str) -> dict[str, object]:
    """The same at every level but for the BEGINs, which name it."""
    ledger_sql, withdraw_sql = "INSERT INTO ledger VALUES ($1, $2, $3)", "UPDATE accounts SET balance = balance - $1 WHERE id = $2"
    select_sql = "SELECT balance FROM accounts WHERE id = $1"
    return {
        "errors": {"atm_balance": "25P02"},
        "rows": {
            "atm_ledger": [[1]],
            "atm_withdraw": [[{"raised": "psycopg.errors.CheckViolation", "sqlstate": "23514",
                               "conn.info.transaction_status": "INERROR"}]],
            "atm_commit": [[{"raised": None, "conn.info.transaction_status": "IDLE"}]],
            "teller_ledger": [[0]],
            "atm_block": [[{"raised": "psycopg.errors.CheckViolation", "conn.info.transaction_status": "IDLE"}]],
            "atm_balance_again": [[Decimal("100")]],
        },
        "sent": {
            "atm_ledger": [begin(level), ledger_sql],
            "atm_withdraw": [withdraw_sql],
            "atm_balance": [select_sql],
            "atm_commit": ["COMMIT"],
            "atm_block": [begin(level), ledger_sql, withdraw_sql, "ROLLBACK"],
            "atm_balance_again": [begin(level), select_sql],
        },
        "state": {
            "atm_withdraw": "idle in transaction (aborted)",
            "atm_balance": "idle in transaction (aborted)",
            "atm_commit": "idle",
            "atm_block": "idle",
        },
        "invariants": {"no_ledger_line": True, "balance_unchanged": True},
        "note": f"the same at every level but for the BEGINs, which name {LEVELS[level]}: an error aborts "
                "the transaction, commit() of an aborted one rolls it back without raising",
    }


SCENARIO["expect"] = {level: expectation(level) for level in LEVELS}


def ledger(conn: psycopg.Connection[Any]) -> int:
    return conn.execute(LEDGER, [1, "debit", 130]).rowcount


def withdraw(conn: psycopg.Connection[Any]) -> dict[str, object]:
    try:
        conn.execute(WITHDRAW, [130, 1])
    except psycopg.Error as exc:
        return {"raised": qualified_name(exc), "sqlstate": exc.sqlstate,
                "conn.info.transaction_status": status(conn)}
    return {"raised": None}


def balance(conn: psycopg.Connection[Any]) -> object:
    return conn.execute("SELECT balance FROM accounts WHERE id = %s", [1]).fetchone()[0]


def commit(conn: psycopg.Connection[Any]) -> dict[str, object]:
    conn.commit()
    return {"raised": None, "conn.info.transaction_status": status(conn)}


def withdraw_in_block(conn: psycopg.Connection[Any]) -> dict[str, object]:
    try:
        with conn.transaction():
            conn.execute(LEDGER, [1, "debit", 130])
            conn.execute(WITHDRAW, [130, 1])
    except psycopg.errors.CheckViolation as exc:
        return {"raised": qualified_name(exc), "conn.info.transaction_status": status(conn)}
    return {"raised": None}


def play(run) -> None:  # type: ignore[no-untyped-def]
    run.step("atm_ledger", ledger)
    run.step("atm_withdraw", withdraw)
    run.step("atm_balance", balance)
    run.step("atm_commit", commit)
    run.step("teller_ledger")
    run.step("atm_block", withdraw_in_block)
    run.step("atm_balance_again", balance)
