"""psycopg 3's `with` blocks: `with connect()` commits and CLOSES; transaction() commits and keeps it; a cursor block ends nothing.

A Python scenario, because the lesson is Python context managers. The first two steps
open a connection of their own with `psycopg.connect(run.dsn)`, as an application does
(run.dsn goes through the wire tap, so what they send is recorded); the others use the
session's connection.
"""

from __future__ import annotations

from typing import Any

import psycopg

from _psycopg_app import LEVELS, begin, status

INSERT = "INSERT INTO ledger VALUES (%s, %s, %s)"
INSERT_SQL = "INSERT INTO ledger VALUES ($1, $2, $3)"
TELLER = "SELECT type FROM ledger ORDER BY type"


class InsufficientFunds(Exception):
    """The application's own reason to abandon a withdrawal."""


SCENARIO = {
    "name": "psycopg-with-blocks",
    "title": "psycopg 3: `with psycopg.connect()` commits and closes the connection; `with conn.transaction()` commits and keeps it; `with conn.cursor()` ends nothing",
    "summary": (
        "The psycopg2 lesson psycopg2-with-connection, with psycopg 3, where `with conn:` means "
        "something else. `with psycopg.connect(dsn) as conn:` commits when the block ends "
        "normally, rolls back when an exception leaves it, and then CLOSES the connection "
        "(psycopg2 keeps it open). A connection object that should outlive the block is not "
        "one for `with`: use `with conn.transaction():`, which sends BEGIN and COMMIT (or "
        "ROLLBACK) and leaves the connection open and idle. `with conn.cursor() as cur:` only "
        "closes the cursor: its INSERT stays in an open transaction, the session idle in "
        "transaction. And `with conn:` on that connection finally commits it and closes the "
        "connection too. The captured traffic shows what each block sent. None of this "
        "depends on the isolation level."
    ),
    "tags": ["psycopg", "driver", "context-manager", "python"],
    "references": [
        "https://www.psycopg.org/psycopg3/docs/basic/transactions.html",
        "https://www.psycopg.org/psycopg3/docs/basic/from_pg2.html#with-connection",
        "https://www.psycopg.org/psycopg3/docs/api/connections.html#psycopg.Connection",
        "https://www.psycopg.org/psycopg3/docs/api/connections.html#psycopg.Connection.transaction",
        "https://www.psycopg.org/psycopg3/docs/api/cursors.html#psycopg.Cursor.close",
    ],
    "capture": True,
    "setup": "CREATE TABLE ledger (account_id int NOT NULL, type text NOT NULL, amount int NOT NULL);",
    "sessions": {"app": {"driver": "psycopg"}, "teller": {"autocommit": True}},
    "steps": [
        {"name": "app_with_connect_ok", "session": "app",
         "sql": "with psycopg.connect(dsn) as conn:\n    conn.execute(\"INSERT INTO ledger ...\", [1, 'deposit', 50])",
         "narration": "A connection of its own, in a `with` block that ends normally: BEGIN (no level: "
                      "a new connection has none set), INSERT, COMMIT, and the connection is closed."},
        {"name": "app_with_connect_raises", "session": "app",
         "sql": "with psycopg.connect(dsn) as conn:\n    conn.execute(\"INSERT INTO ledger ...\", [1, 'withdrawal', -500])\n"
                "    raise InsufficientFunds",
         "narration": "The application's own exception leaves the block: ROLLBACK, then close; the "
                      "exception reaches the caller."},
        {"name": "teller_after_connect_blocks", "session": "teller", "sql": TELLER},
        {"name": "app_with_transaction", "session": "app",
         "sql": "with conn.transaction():\n    conn.execute(\"INSERT INTO ledger ...\", [1, 'interest', 2])",
         "narration": "On the session's connection: BEGIN (naming the run's level) and COMMIT, and the "
                      "connection stays open and idle."},
        {"name": "app_with_cursor", "session": "app",
         "sql": "with conn.cursor() as cur:\n    cur.execute(\"INSERT INTO ledger ...\", [1, 'fee', -1])",
         "narration": "Only the cursor is closed: BEGIN and the INSERT, no COMMIT. The session is idle in "
                      "transaction, holding its lock."},
        {"name": "teller_during_cursor", "session": "teller", "sql": TELLER,
         "narration": "The fee is not committed."},
        {"name": "app_with_conn", "session": "app", "sql": "with conn:\n    pass",
         "narration": "`with conn:` on the session's connection: COMMIT (the fee), then the connection is closed."},
        {"name": "teller_at_end", "session": "teller", "sql": TELLER},
    ],
    "expect": {},  # per level, below: only the level named in the session's BEGIN differs
}


def expectation(level: str) -> dict[str, object]:
    """The same at every level but for the session's BEGINs, which name it (the connections the
    first two steps open have no level set: their BEGIN is plain)."""
    return {
        "rows": {
            "app_with_connect_ok": [[{"conn.closed": True}]],
            "app_with_connect_raises": [[{"exception seen by the caller": "InsufficientFunds", "conn.closed": True}]],
            "teller_after_connect_blocks": [["deposit"]],
            "app_with_transaction": [[{"conn.closed": False, "conn.info.transaction_status": "IDLE"}]],
            "app_with_cursor": [[{"cur.closed": True, "conn.closed": False, "conn.info.transaction_status": "INTRANS"}]],
            "teller_during_cursor": [["deposit"], ["interest"]],
            "app_with_conn": [[{"conn.closed": True}]],
            "teller_at_end": [["deposit"], ["fee"], ["interest"]],
        },
        "sent": {
            "app_with_connect_ok": ["BEGIN", INSERT_SQL, "COMMIT"],
            "app_with_connect_raises": ["BEGIN", INSERT_SQL, "ROLLBACK"],
            "app_with_transaction": [begin(level), INSERT_SQL, "COMMIT"],
            "app_with_cursor": [begin(level), INSERT_SQL],
            "app_with_conn": ["COMMIT"],
        },
        "state": {"app_with_transaction": "idle", "app_with_cursor": "idle in transaction"},
        "holds": {"app_with_cursor": ["RowExclusiveLock on ledger"]},
        "note": f"the same at every level but for the session's BEGINs, which name {LEVELS[level]}: "
                "the blocks decide when COMMIT, ROLLBACK or close happen",
    }


SCENARIO["expect"] = {level: expectation(level) for level in LEVELS}


def with_connect_ok(dsn: str):  # type: ignore[no-untyped-def]
    def block(_session_conn: psycopg.Connection[Any]) -> dict[str, object]:
        with psycopg.connect(dsn) as conn:
            conn.execute(INSERT, [1, "deposit", 50])
        return {"conn.closed": conn.closed}

    return block


def with_connect_raises(dsn: str):  # type: ignore[no-untyped-def]
    def block(_session_conn: psycopg.Connection[Any]) -> dict[str, object]:
        try:
            with psycopg.connect(dsn) as conn:
                conn.execute(INSERT, [1, "withdrawal", -500])
                raise InsufficientFunds("balance too low for 500")
        except InsufficientFunds as exc:
            seen = type(exc).__name__
        return {"exception seen by the caller": seen, "conn.closed": conn.closed}

    return block


def with_transaction(conn: psycopg.Connection[Any]) -> dict[str, object]:
    with conn.transaction():
        conn.execute(INSERT, [1, "interest", 2])
    return {"conn.closed": conn.closed, "conn.info.transaction_status": status(conn)}


def with_cursor(conn: psycopg.Connection[Any]) -> dict[str, object]:
    with conn.cursor() as cur:
        cur.execute(INSERT, [1, "fee", -1])
    return {"cur.closed": cur.closed, "conn.closed": conn.closed, "conn.info.transaction_status": status(conn)}


def with_conn(conn: psycopg.Connection[Any]) -> dict[str, object]:
    with conn:
        pass
    return {"conn.closed": conn.closed}


def play(run) -> None:  # type: ignore[no-untyped-def]
    run.step("app_with_connect_ok", with_connect_ok(run.dsn))
    run.step("app_with_connect_raises", with_connect_raises(run.dsn))
    run.step("teller_after_connect_blocks")
    run.step("app_with_transaction", with_transaction)
    run.step("app_with_cursor", with_cursor)
    run.step("teller_during_cursor")
    run.step("app_with_conn", with_conn)
    run.step("teller_at_end")
