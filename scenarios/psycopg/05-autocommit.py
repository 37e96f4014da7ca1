"""psycopg 3 with autocommit: no BEGIN, nothing left open; transaction() still makes one unit.

A Python scenario, because the lesson is psycopg 3's API: `autocommit=True` (here the
session's `autocommit: true`, which txnlab sets as `conn.autocommit = True`), a
`conn.transaction()` block on such a connection, and switching autocommit while a
transaction is open.
"""

from __future__ import annotations

from typing import Any

import psycopg

from _psycopg_app import refused, status

SELECT = "SELECT balance FROM accounts WHERE id = %s"
DEPOSIT = "UPDATE accounts SET balance = balance + %s WHERE id = %s"
TELLER = "SELECT id, balance FROM accounts ORDER BY id"

SCENARIO = {
    "name": "psycopg-autocommit",
    "title": "psycopg 3 with autocommit = True: each statement alone, no BEGIN, nothing idle in transaction; transaction() still sends BEGIN and COMMIT",
    "summary": (
        "The psycopg2 lesson psycopg2-autocommit, with psycopg 3 (psycopg.connect(dsn, "
        "autocommit=True), or conn.autocommit = True). psycopg 3 sends each statement as it is, "
        "with no BEGIN in front: the server runs it as a transaction of its own. After a SELECT "
        "the session is plain idle and holds no lock; an UPDATE is committed the moment it "
        "completes, before the application calls anything. When several statements must be one "
        "unit, `with conn.transaction():` sends BEGIN (plain: an autocommit connection names no "
        "level, so the session's default applies) and COMMIT around them, and the connection is "
        "back in autocommit after the block. Switching autocommit off, running a statement and "
        "then switching it back on inside the implicit transaction raises "
        "psycopg.ProgrammingError before anything is sent. Every statement is its own "
        "transaction at the run's level, so all four levels behave the same."
    ),
    "tags": ["psycopg", "driver", "autocommit", "idle-in-transaction", "python"],
    "references": [
        "https://www.psycopg.org/psycopg3/docs/basic/transactions.html#autocommit-transactions",
        "https://www.psycopg.org/psycopg3/docs/api/connections.html#psycopg.Connection.autocommit",
        "https://www.psycopg.org/psycopg3/docs/api/connections.html#psycopg.Connection.transaction",
        "https://www.postgresql.org/docs/current/sql-set-transaction.html",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL CHECK (balance >= 0));\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 250);"
    ),
    "sessions": {"app": {"driver": "psycopg", "autocommit": True}, "teller": {"autocommit": True}},
    "steps": [
        {"name": "app_select", "session": "app", "sql": 'conn.execute("SELECT balance FROM accounts WHERE id = %s", [1])',
         "narration": "The SELECT alone, no BEGIN: afterwards the session is idle and holds no lock."},
        {"name": "app_deposit", "session": "app",
         "sql": 'conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", [50, 1])',
         "narration": "Committed as soon as it completes; the application never calls commit()."},
        {"name": "teller_after_deposit", "session": "teller", "sql": TELLER,
         "narration": "Another session already sees 150."},
        {"name": "app_transfer", "session": "app",
         "sql": "with conn.transaction():\n"
                "    conn.execute(\"UPDATE accounts SET balance = balance + %s WHERE id = %s\", [-30, 1])\n"
                "    conn.execute(\"UPDATE accounts SET balance = balance + %s WHERE id = %s\", [30, 2])",
         "narration": "A transfer must be one unit: the block sends BEGIN and COMMIT around the two UPDATEs; "
                      "the connection is in autocommit again afterwards."},
        {"name": "app_switch_back_too_late", "session": "app",
         "sql": 'conn.autocommit = False; conn.execute("SELECT ...", [1]); conn.autocommit = True',
         "narration": "With autocommit off the SELECT opens a transaction, and switching autocommit on "
                      "inside it is refused by psycopg 3 itself, before anything is sent."},
        {"name": "app_rollback", "session": "app", "sql": "conn.rollback(); conn.autocommit = True"},
        {"name": "teller_at_end", "session": "teller", "sql": TELLER},
    ],
    "invariants": {"money_conserved": "SELECT sum(balance) = 400 FROM accounts"},
    "expect": {},  # below
}

SELECT_SQL, DEPOSIT_SQL = "SELECT balance FROM accounts WHERE id = $1", "UPDATE accounts SET balance = balance + $1 WHERE id = $2"


def expectation(level: str) -> dict[str, object]:
    """The same at every level: no BEGIN names a level (an autocommit connection has none set;
    the session's default, the run's level, applies)."""
    expected: dict[str, object] = {
        "rows": {
            "app_select": [[{"balance": 100, "conn.info.transaction_status": "IDLE"}]],
            "app_deposit": [[{"rows updated": 1, "conn.info.transaction_status": "IDLE"}]],
            "teller_after_deposit": [[1, 150], [2, 250]],
            "app_transfer": [[{"conn.autocommit": True, "conn.info.transaction_status": "IDLE"}]],
            "app_switch_back_too_late": [[{
                "raised": "psycopg.ProgrammingError", "sqlstate": None,
                "message": "can't change 'autocommit' now: connection in transaction status INTRANS",
                "conn.info.transaction_status": "INTRANS",
            }]],
            "app_rollback": [[{"conn.autocommit": True, "conn.info.transaction_status": "IDLE"}]],
            "teller_at_end": [[1, 120], [2, 280]],
        },
        "sent": {
            "app_select": [SELECT_SQL],
            "app_deposit": [DEPOSIT_SQL],
            "app_transfer": ["BEGIN", DEPOSIT_SQL, DEPOSIT_SQL, "COMMIT"],
            "app_switch_back_too_late": ["BEGIN", SELECT_SQL],
            "app_rollback": ["ROLLBACK"],
        },
        "state": {"app_select": "idle", "app_deposit": "idle", "app_transfer": "idle",
                  "app_switch_back_too_late": "idle in transaction", "app_rollback": "idle"},
        "invariants": {"money_conserved": True},
        "note": "the same at every level: each statement is a transaction of its own at the run's level, "
                "and the BEGINs psycopg 3 sends here name no level",
    }
    if level != "ser":  # at SERIALIZABLE a statement's SIRead locks may outlive it for a while
        expected["holds"] = {"app_select": [], "app_deposit": [], "app_transfer": [], "app_rollback": []}
    return expected


SCENARIO["expect"] = {level: expectation(level) for level in ("ru", "rc", "rr", "ser")}


def select_balance(conn: psycopg.Connection[Any]) -> dict[str, object]:
    balance = conn.execute(SELECT, [1]).fetchone()[0]
    return {"balance": balance, "conn.info.transaction_status": status(conn)}


def deposit(conn: psycopg.Connection[Any]) -> dict[str, object]:
    rows = conn.execute(DEPOSIT, [50, 1]).rowcount
    return {"rows updated": rows, "conn.info.transaction_status": status(conn)}


def transfer(conn: psycopg.Connection[Any]) -> dict[str, object]:
    with conn.transaction():
        conn.execute(DEPOSIT, [-30, 1])
        conn.execute(DEPOSIT, [30, 2])
    return {"conn.autocommit": conn.autocommit, "conn.info.transaction_status": status(conn)}


def switch_back(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = False
    conn.execute(SELECT, [1])
    conn.autocommit = True


def rollback(conn: psycopg.Connection[Any]) -> dict[str, object]:
    conn.rollback()
    conn.autocommit = True
    return {"conn.autocommit": conn.autocommit, "conn.info.transaction_status": status(conn)}


def play(run) -> None:  # type: ignore[no-untyped-def]
    run.step("app_select", select_balance)
    run.step("app_deposit", deposit)
    run.step("teller_after_deposit")
    run.step("app_transfer", transfer)
    run.step("app_switch_back_too_late", refused(switch_back))
    run.step("app_rollback", rollback)
    run.step("teller_at_end")
