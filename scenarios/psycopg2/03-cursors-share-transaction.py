"""All cursors of a psycopg2 connection share its one transaction.

A Python scenario, because the lesson is about cursor objects: each step opens two
cursors on the session's connection, as two parts of an application might, and each
cursor writes a row. The step returns what both cursors report about their
transaction, and a teller (an autocommit session) reads what is committed.
"""

from __future__ import annotations

import psycopg2.extensions

from _psycopg2_app import transaction_status_name

SCENARIO = {
    "name": "psycopg2-cursors-share-transaction",
    "title": "Two cursors, one transaction: commit() keeps both inserts, rollback() loses both",
    "summary": (
        "In psycopg2 a cursor is only a way to send statements and read results; the "
        "transaction belongs to the connection. Here one piece of code writes a ledger line "
        "through cursor A and another writes the matching audit line through cursor B, both "
        "on the same connection. Both statements run in the same transaction (the two "
        "cursors report the same transaction id) and a teller sees neither while it is open. "
        "One conn.commit() makes both durable. In a second round the same two cursors write "
        "again and the application calls conn.rollback(): both writes are gone, including "
        "the one made through the cursor nobody rolled back. The same holds for threads "
        "sharing one connection, as the 2017 blog notes: a failure in one aborts the other's "
        "work too. Closing a cursor ends nothing (see psycopg2-with-connection). The "
        "behaviour is the same at every isolation level."
    ),
    "tags": ["psycopg2", "driver", "cursor", "blog", "python"],
    "references": [
        "https://www.psycopg.org/docs/usage.html#transactions-control",
        "https://www.psycopg.org/docs/usage.html#thread-safety",
        "https://www.psycopg.org/docs/connection.html#connection.cursor",
        "https://www.postgresql.org/docs/current/functions-info.html#FUNCTIONS-PG-SNAPSHOT",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE ledger (account_id int NOT NULL, amount int NOT NULL, note text NOT NULL);\n"
        "CREATE TABLE audit (account_id int NOT NULL, event text NOT NULL);"
    ),
    "sessions": {"app": {}, "teller": {"autocommit": True}},
    "steps": [
        {"name": "app_two_cursors", "session": "app",
         "sql": "cursor A: INSERT INTO ledger ...; cursor B: INSERT INTO audit ...",
         "narration": "Cursor A inserts a ledger line and cursor B an audit line; each then asks "
                      "the server for its transaction id. The same id: one transaction. Cursor A "
                      "is even closed (its with block ended) before cursor B starts: closing a "
                      "cursor ends nothing."},
        {"name": "teller_before_commit", "session": "teller",
         "sql": "SELECT (SELECT count(*) FROM ledger) AS ledger_rows, (SELECT count(*) FROM audit) AS audit_rows",
         "narration": "Nothing is committed yet, so another session sees neither row."},
        {"name": "app_commit", "session": "app", "sql": "COMMIT",
         "narration": "One conn.commit() for the connection: it commits what both cursors did."},
        {"name": "teller_after_commit", "session": "teller",
         "sql": "SELECT (SELECT count(*) FROM ledger) AS ledger_rows, (SELECT count(*) FROM audit) AS audit_rows"},
        {"name": "app_two_cursors_again", "session": "app",
         "sql": "cursor A: INSERT INTO ledger ...; cursor B: INSERT INTO audit ...",
         "narration": "Second round: psycopg2 opens a new transaction, and both cursors write in it again."},
        {"name": "app_rollback", "session": "app", "sql": "ROLLBACK",
         "narration": "The application calls conn.rollback(): the writes of both cursors are undone."},
        {"name": "teller_after_rollback", "session": "teller",
         "sql": "SELECT (SELECT count(*) FROM ledger) AS ledger_rows, (SELECT count(*) FROM audit) AS audit_rows"},
    ],
    "invariants": {
        "first_round_kept": "SELECT count(*) = 1 FROM ledger WHERE note = 'round 1'",
        "second_round_gone": "SELECT NOT EXISTS (SELECT 1 FROM audit WHERE event = 'round 2')",
    },
    "expect": {
        "all": {
            "rows": {
                "app_two_cursors": [[{
                    "cursor A and cursor B in the same transaction": True,
                    "psycopg2 transaction status": "TRANSACTION_STATUS_INTRANS",
                }]],
                "teller_before_commit": [[0, 0]],
                "teller_after_commit": [[1, 1]],
                "app_two_cursors_again": [[{
                    "cursor A and cursor B in the same transaction": True,
                    "psycopg2 transaction status": "TRANSACTION_STATUS_INTRANS",
                }]],
                "teller_after_rollback": [[1, 1]],
            },
            "invariants": {"first_round_kept": True, "second_round_gone": True},
            "note": "the same at every level: a transaction belongs to the connection, so commit() "
                    "and rollback() act on the work of every cursor",
        },
    },
}

def two_cursors(round_name: str):  # type: ignore[no-untyped-def]
    """Two independent pieces of code, each with its own cursor on the same connection."""

    def write(conn: psycopg2.extensions.connection) -> dict[str, object]:
        with conn.cursor() as cursor_a:
            cursor_a.execute("INSERT INTO ledger VALUES (1, -30, %s)", [round_name])
            cursor_a.execute("SELECT pg_current_xact_id()")
            xid_a = cursor_a.fetchone()[0]
        with conn.cursor() as cursor_b:
            cursor_b.execute("INSERT INTO audit VALUES (1, %s)", [round_name])
            cursor_b.execute("SELECT pg_current_xact_id()")
            xid_b = cursor_b.fetchone()[0]
        return {
            "cursor A and cursor B in the same transaction": xid_a == xid_b,
            "psycopg2 transaction status": transaction_status_name(conn),
        }

    return write


def play(run) -> None:  # type: ignore[no-untyped-def]
    run.call("app", "app_two_cursors", "cursor A: INSERT INTO ledger ...; cursor B: INSERT INTO audit ...",
             two_cursors("round 1"))
    run.step("teller_before_commit")
    run.step("app_commit")
    run.step("teller_after_commit")
    run.call("app", "app_two_cursors_again", "cursor A: INSERT INTO ledger ...; cursor B: INSERT INTO audit ...",
             two_cursors("round 2"))
    run.step("app_rollback")
    run.step("teller_after_rollback")
