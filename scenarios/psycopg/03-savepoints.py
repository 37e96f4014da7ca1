"""psycopg 3's nested transaction() blocks are savepoints; inside an implicit transaction, so is the outer one.

A Python scenario, because the lesson is psycopg 3's `conn.transaction()` context manager:
what it sends depends on whether a transaction is already open when the block starts.
"""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.errors

from _psycopg_app import LEVELS, begin, qualified_name, status

AUDIT = "INSERT INTO audit VALUES (%s, %s)"
WITHDRAW = "UPDATE accounts SET balance = balance - %s WHERE id = %s"
TELLER = "SELECT event FROM audit ORDER BY event"

SCENARIO = {
    "name": "psycopg-savepoints",
    "title": "psycopg 3: a nested transaction() block is a SAVEPOINT; after an implicit BEGIN the outer block is one too, and commits nothing",
    "summary": (
        "psycopg 3 has what psycopg2 lacks (compare psycopg2-savepoint-recovery): "
        "conn.transaction() blocks that nest. On an idle connection the outer block sends BEGIN "
        "and, at its end, COMMIT; a block inside it sends SAVEPOINT \"_pg3_2\" (psycopg 3 names "
        "it after the depth of the block), and RELEASE \"_pg3_2\" at its end, or ROLLBACK TO "
        "\"_pg3_2\" and RELEASE when an exception leaves it, so a failed withdrawal undoes only itself and the audit rows around it commit. But a block that "
        "starts while a transaction is already open (psycopg 3 began one implicitly for an "
        "earlier conn.execute()) is a savepoint too, even the outermost one: it releases its "
        "savepoint and commits nothing. The session stays idle in transaction, a teller sees "
        "none of it, and conn.close() without a commit() discards it all, silently. The same "
        "at every level."
    ),
    "tags": ["psycopg", "driver", "savepoint", "error-handling", "python"],
    "references": [
        "https://www.psycopg.org/psycopg3/docs/basic/transactions.html#nested-transactions",
        "https://www.psycopg.org/psycopg3/docs/api/connections.html#psycopg.Connection.transaction",
        "https://www.psycopg.org/psycopg3/docs/api/objects.html#psycopg.Transaction",
        "https://www.postgresql.org/docs/current/sql-savepoint.html",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL,\n"
        "                       balance numeric NOT NULL CONSTRAINT positive_balance CHECK (balance >= 0));\n"
        "CREATE TABLE audit (account_id int NOT NULL, event text NOT NULL);\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100);"
    ),
    "sessions": {"atm": {"driver": "psycopg"}, "teller": {"autocommit": True}},
    "steps": [
        {"name": "atm_nested_blocks", "session": "atm",
         "sql": "with conn.transaction():\n"
                "    conn.execute(\"INSERT INTO audit ...\", [1, 'withdrawal of 130 requested'])\n"
                "    try:\n"
                "        with conn.transaction():\n"
                "            conn.execute(\"UPDATE accounts SET balance = balance - %s ...\", [130, 1])\n"
                "    except psycopg.errors.CheckViolation:\n"
                "        conn.execute(\"INSERT INTO audit ...\", [1, 'refused: insufficient funds'])",
         "narration": "On an idle connection: BEGIN; the inner block is a savepoint, rolled back to when "
                      "the CHECK fails; the outer block commits both audit rows."},
        {"name": "teller_after_blocks", "session": "teller", "sql": TELLER},
        {"name": "atm_implicit_then_block", "session": "atm",
         "sql": "conn.execute(\"INSERT INTO audit ...\", [1, 'balance shown'])\n"
                "with conn.transaction():\n"
                "    conn.execute(\"INSERT INTO audit ...\", [1, 'receipt printed'])",
         "narration": "The first execute() opens a transaction implicitly, so the block after it is only "
                      "a savepoint: SAVEPOINT and RELEASE, no COMMIT. The session is idle in transaction."},
        {"name": "teller_after_implicit", "session": "teller", "sql": TELLER,
         "narration": "Neither of the two new rows is committed."},
        {"name": "atm_close", "session": "atm", "sql": "conn.close()",
         "narration": "The application closes the connection, believing the block committed: the server "
                      "rolls the transaction back as the session ends."},
        {"name": "teller_after_close", "session": "teller", "sql": TELLER,
         "narration": "Both rows are lost, and nothing raised."},
    ],
    "invariants": {"two_audit_rows": "SELECT count(*) = 2 FROM audit"},
    "expect": {},  # per level, below: only the level named in the BEGIN differs
}

AUDIT_SQL = "INSERT INTO audit VALUES ($1, $2)"
BOTH_ROWS = [["refused: insufficient funds"], ["withdrawal of 130 requested"]]


def expectation(level: str) -> dict[str, object]:
    """The same at every level but for the BEGINs, which name it."""
    return {
        "rows": {
            "atm_nested_blocks": [[{"caught in the outer block": "psycopg.errors.CheckViolation",
                                    "conn.info.transaction_status": "IDLE"}]],
            "teller_after_blocks": BOTH_ROWS,
            "atm_implicit_then_block": [[{"conn.info.transaction_status": "INTRANS"}]],
            "teller_after_implicit": BOTH_ROWS,
            "atm_close": [[{"conn.closed": True}]],
            "teller_after_close": BOTH_ROWS,
        },
        "sent": {
            # psycopg 3 names a savepoint after the depth of the block (the outer block counts),
            # and writes ROLLBACK TO / RELEASE without the word SAVEPOINT
            "atm_nested_blocks": [begin(level), AUDIT_SQL, 'SAVEPOINT "_pg3_2"',
                                  "UPDATE accounts SET balance = balance - $1 WHERE id = $2",
                                  'ROLLBACK TO "_pg3_2"', 'RELEASE "_pg3_2"', AUDIT_SQL, "COMMIT"],
            "atm_implicit_then_block": [begin(level), AUDIT_SQL, 'SAVEPOINT "_pg3_1"', AUDIT_SQL, 'RELEASE "_pg3_1"'],
            "atm_close": [],
        },
        "state": {"atm_nested_blocks": "idle", "atm_implicit_then_block": "idle in transaction"},
        "holds": {"atm_implicit_then_block": ["RowExclusiveLock on audit"]},
        "invariants": {"two_audit_rows": True},
        "note": f"the same at every level but for the BEGINs, which name {LEVELS[level]}: a block opened "
                "inside a transaction is a savepoint, whatever the level",
    }


SCENARIO["expect"] = {level: expectation(level) for level in LEVELS}


def nested_blocks(conn: psycopg.Connection[Any]) -> dict[str, object]:
    with conn.transaction():
        conn.execute(AUDIT, [1, "withdrawal of 130 requested"])
        try:
            with conn.transaction():
                conn.execute(WITHDRAW, [130, 1])
        except psycopg.errors.CheckViolation as exc:
            caught = qualified_name(exc)
            conn.execute(AUDIT, [1, "refused: insufficient funds"])
    return {"caught in the outer block": caught, "conn.info.transaction_status": status(conn)}


def implicit_then_block(conn: psycopg.Connection[Any]) -> dict[str, object]:
    conn.execute(AUDIT, [1, "balance shown"])
    with conn.transaction():
        conn.execute(AUDIT, [1, "receipt printed"])
    return {"conn.info.transaction_status": status(conn)}


def close(conn: psycopg.Connection[Any]) -> dict[str, object]:
    conn.close()
    return {"conn.closed": conn.closed}


def play(run) -> None:  # type: ignore[no-untyped-def]
    run.step("atm_nested_blocks", nested_blocks)
    run.step("teller_after_blocks")
    run.step("atm_implicit_then_block", implicit_then_block)
    run.step("teller_after_implicit")
    run.step("atm_close", close)
    run.step("teller_after_close")
