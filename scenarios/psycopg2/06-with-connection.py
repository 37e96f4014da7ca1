"""`with conn:` ends a transaction but keeps the connection; `with conn.cursor()` ends neither.

A Python scenario, because the lesson is about Python context managers. Each step
runs a small piece of application code on the session's connection and returns
what that code can observe afterwards (conn.closed, cur.closed, psycopg2's
transaction status); a teller (an autocommit session) reads what is committed.
"""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

from _psycopg2_app import qualified_name, transaction_status_name

SCENARIO = {
    "name": "psycopg2-with-connection",
    "title": "`with conn:` commits or rolls back but does not close; `with conn.cursor():` closes the cursor and ends no transaction",
    "summary": (
        "Two context managers that look alike and do different things. `with conn:` wraps a "
        "transaction: if the block ends normally psycopg2 commits, if an exception leaves the "
        "block it rolls back and lets the exception go on to the caller. It does not close "
        "the connection: afterwards conn.closed is still 0 and the next `with conn:` block "
        "runs a new transaction on it (this is unlike psycopg 3 and unlike files; close the "
        "connection yourself, in a finally or a pool). `with conn.cursor() as cur:` only "
        "closes the cursor: the transaction it wrote in stays open, and the server shows the "
        "session idle in transaction; if a statement in the block failed, the transaction "
        "stays failed after the block (the 2017 blog notes this too). The captured traffic "
        "shows exactly what each block sent: BEGIN and COMMIT, BEGIN and ROLLBACK, or just the "
        "statement. None of this depends on the isolation level."
    ),
    "tags": ["psycopg2", "driver", "context-manager", "python"],
    "references": [
        "https://www.psycopg.org/docs/usage.html#with",
        "https://www.psycopg.org/docs/connection.html#connection",
        "https://www.psycopg.org/docs/connection.html#connection.closed",
        "https://www.psycopg.org/docs/cursor.html#cursor.close",
        "https://www.psycopg.org/docs/usage.html#transactions-control",
        "https://www.psycopg.org/psycopg3/docs/api/connections.html",
        "https://www.postgresql.org/docs/current/sql-commit.html",
        "https://www.postgresql.org/docs/current/sql-rollback.html",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE ledger (account_id int NOT NULL, type text NOT NULL, amount int NOT NULL);"
    ),
    "sessions": {"app": {}, "teller": {"autocommit": True}},
    "steps": [
        {"name": "app_with_conn_ok", "session": "app",
         "sql": "with conn: ... INSERT INTO ledger ... (the block ends normally)",
         "narration": "The block ends normally: psycopg2 sends BEGIN, the INSERT, then COMMIT. The "
                      "connection is still open (closed == 0) and idle."},
        {"name": "teller_after_ok", "session": "teller", "sql": "SELECT count(*) AS ledger_rows FROM ledger"},
        {"name": "app_with_conn_exception", "session": "app",
         "sql": "with conn: ... INSERT INTO ledger ...; raise InsufficientFunds",
         "narration": "The application raises its own exception inside the block: psycopg2 sends "
                      "ROLLBACK, and the exception reaches the caller unchanged. The connection is "
                      "still open."},
        {"name": "teller_after_exception", "session": "teller",
         "sql": "SELECT count(*) AS ledger_rows FROM ledger",
         "narration": "The withdrawal's ledger line was rolled back."},
        {"name": "app_with_conn_again", "session": "app",
         "sql": "with conn: ... SELECT count(*) FROM ledger",
         "narration": "The same connection object serves the next `with conn:` block, a new transaction."},
        {"name": "app_with_cursor", "session": "app",
         "sql": "with conn.cursor() as cur: INSERT INTO ledger ...",
         "narration": "Only the cursor is closed when the block ends. psycopg2 sent BEGIN and the "
                      "INSERT, no COMMIT: the transaction is open and the server shows the session "
                      "idle in transaction, holding its lock."},
        {"name": "teller_during_cursor", "session": "teller",
         "sql": "SELECT count(*) AS ledger_rows FROM ledger",
         "narration": "The fee written in the cursor block is not committed."},
        {"name": "app_with_cursor_error", "session": "app",
         "sql": "with conn.cursor() as cur: INSERT INTO ledger ... NULL ...  (fails)",
         "narration": "A statement fails inside a cursor block (NOT NULL, 23502) and the application "
                      "catches the exception. Leaving the block closed the cursor and nothing else: "
                      "the transaction is failed and stays so until rollback()."},
        {"name": "app_rollback", "session": "app", "sql": "ROLLBACK",
         "narration": "Only rollback() ends it; the fee from the earlier cursor block is lost with it."},
        {"name": "teller_at_end", "session": "teller", "sql": "SELECT type FROM ledger ORDER BY type"},
    ],
    "invariants": {
        "only_the_deposit_committed": "SELECT array_agg(type ORDER BY type) = '{deposit}' FROM ledger",
    },
    "expect": {
        "all": {
            "rows": {
                "app_with_conn_ok": [[{
                    "conn.closed": 0,
                    "transaction status": "TRANSACTION_STATUS_IDLE",
                }]],
                "teller_after_ok": [[1]],
                "app_with_conn_exception": [[{
                    "exception seen by the caller": "InsufficientFunds",
                    "conn.closed": 0,
                    "transaction status": "TRANSACTION_STATUS_IDLE",
                }]],
                "teller_after_exception": [[1]],
                "app_with_conn_again": [[{"ledger rows": 1, "conn.closed": 0}]],
                "app_with_cursor": [[{
                    "cur.closed": True,
                    "conn.closed": 0,
                    "transaction status": "TRANSACTION_STATUS_INTRANS",
                }]],
                "teller_during_cursor": [[1]],
                "app_with_cursor_error": [[{
                    "exception caught": "psycopg2.errors.NotNullViolation",
                    "pgcode": "23502",
                    "cur.closed": True,
                    "transaction status": "TRANSACTION_STATUS_INERROR",
                }]],
                "teller_at_end": [["deposit"]],
            },
            "invariants": {"only_the_deposit_committed": True},
            "note": "the same at every level: the context managers decide when psycopg2 sends COMMIT "
                    "or ROLLBACK, which the isolation level does not change",
        },
    },
}

class InsufficientFunds(Exception):
    """The application's own reason to abandon a withdrawal."""


def deposit_in_with_conn(conn: psycopg2.extensions.connection) -> dict[str, object]:
    with conn:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO ledger VALUES (1, 'deposit', 50)")
    return {"conn.closed": conn.closed, "transaction status": transaction_status_name(conn)}


def withdrawal_that_raises(conn: psycopg2.extensions.connection) -> dict[str, object]:
    try:
        with conn:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO ledger VALUES (1, 'withdrawal', -500)")
            raise InsufficientFunds("balance too low for 500")
    except InsufficientFunds as exc:
        seen = type(exc).__name__
    return {"exception seen by the caller": seen, "conn.closed": conn.closed,
            "transaction status": transaction_status_name(conn)}


def count_in_new_block(conn: psycopg2.extensions.connection) -> dict[str, object]:
    with conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM ledger")
            rows = cur.fetchone()[0]
    return {"ledger rows": rows, "conn.closed": conn.closed}


def fee_in_cursor_block(conn: psycopg2.extensions.connection) -> dict[str, object]:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO ledger VALUES (1, 'fee', -1)")
    return {"cur.closed": cur.closed, "conn.closed": conn.closed, "transaction status": transaction_status_name(conn)}


def failing_statement_in_cursor_block(conn: psycopg2.extensions.connection) -> dict[str, object]:
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO ledger VALUES (1, 'fee', NULL)")
    except psycopg2.Error as exc:
        caught, code = qualified_name(exc), exc.pgcode
    return {
        "exception caught": caught,
        "pgcode": code,
        "cur.closed": cur.closed,
        "transaction status": transaction_status_name(conn),
    }


def play(run) -> None:  # type: ignore[no-untyped-def]
    run.call("app", "app_with_conn_ok", "with conn: ... INSERT INTO ledger ... (the block ends normally)",
             deposit_in_with_conn)
    run.step("teller_after_ok")
    run.call("app", "app_with_conn_exception", "with conn: ... INSERT INTO ledger ...; raise InsufficientFunds",
             withdrawal_that_raises)
    run.step("teller_after_exception")
    run.call("app", "app_with_conn_again", "with conn: ... SELECT count(*) FROM ledger", count_in_new_block)
    run.call("app", "app_with_cursor", "with conn.cursor() as cur: INSERT INTO ledger ...", fee_in_cursor_block)
    run.step("teller_during_cursor")
    run.call("app", "app_with_cursor_error", "with conn.cursor() as cur: INSERT INTO ledger ... NULL ...  (fails)",
             failing_statement_in_cursor_block)
    run.step("app_rollback")
    run.step("teller_at_end")
