"""Setting the isolation level in psycopg 3: between transactions only; it takes effect at the next BEGIN.

A Python scenario, because `conn.isolation_level` is a property of psycopg 3's
connection, not SQL. Each step reports what the server says the transaction's level is
(`current_setting('transaction_isolation')`), so what takes effect is the server's word. It
is read with a SELECT, which takes the transaction's snapshot: after a SHOW, which takes
none, the server would still accept SET TRANSACTION ISOLATION LEVEL.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import IsolationLevel

from _psycopg_app import LEVELS, begin, refused, status

SHOW = "SELECT current_setting('transaction_isolation')"

SCENARIO = {
    "name": "psycopg-isolation-level",
    "title": "psycopg 3: conn.isolation_level is refused inside a transaction and takes effect at the next BEGIN; None means the server's default",
    "summary": (
        "The session starts with conn.isolation_level set to the run's level, as an "
        "application sets it after connecting: psycopg 3 writes it into every BEGIN it sends, "
        "and the server reports that level. After a first statement a transaction is open, and "
        "assigning conn.isolation_level = IsolationLevel.SERIALIZABLE then raises "
        "psycopg.ProgrammingError (no SQLSTATE), sending nothing; the open transaction keeps its "
        "level. SET TRANSACTION ISOLATION LEVEL as SQL is too late as well: the server refuses a "
        "change of level after the transaction's first snapshot (25001, except at SERIALIZABLE, where "
        "asking for SERIALIZABLE changes nothing) and the transaction is aborted. Between transactions the "
        "assignment works, sends nothing, and the next BEGIN says SERIALIZABLE. Setting it back to "
        "None, psycopg 3's default, makes the BEGIN plain, and the server's default applies "
        "(default_transaction_isolation: read committed unless configured). The steps are the "
        "same at every level; only the first transaction's level is the run's."
    ),
    "tags": ["psycopg", "driver", "isolation-level", "python"],
    "references": [
        "https://www.psycopg.org/psycopg3/docs/api/connections.html#psycopg.Connection.isolation_level",
        "https://www.psycopg.org/psycopg3/docs/basic/transactions.html#transaction-characteristics",
        "https://www.postgresql.org/docs/current/sql-set-transaction.html",
        "https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-DEFAULT-TRANSACTION-ISOLATION",
    ],
    "capture": True,
    "setup": "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);\nINSERT INTO accounts VALUES (1, 100);",
    "sessions": {"app": {"driver": "psycopg"}, "dba": {"autocommit": True}},
    "steps": [
        {"name": "app_show", "session": "app", "sql": f'conn.execute("{SHOW}")',
         "narration": "The first statement: psycopg 3 sends BEGIN with the level set on the connection."},
        {"name": "app_set_in_transaction", "session": "app",
         "sql": "conn.isolation_level = IsolationLevel.SERIALIZABLE",
         "narration": "A transaction is open: psycopg 3 refuses the change before sending anything."},
        {"name": "app_show_unchanged", "session": "app", "sql": f'conn.execute("{SHOW}")',
         "narration": "The open transaction keeps its level."},
        {"name": "app_set_transaction_sql", "session": "app",
         "sql": 'conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")',
         "narration": "The SQL way is too late too: after the transaction's first snapshot the server "
                      "refuses a change of level (25001), and the transaction is aborted. (At SERIALIZABLE "
                      "this asks for no change, and is accepted.)"},
        {"name": "app_rollback", "session": "app", "sql": "conn.rollback()"},
        {"name": "app_set_between", "session": "app", "sql": "conn.isolation_level = IsolationLevel.SERIALIZABLE",
         "narration": "Between transactions the assignment works, and sends nothing."},
        {"name": "app_show_serializable", "session": "app", "sql": f'conn.execute("{SHOW}")',
         "narration": "It takes effect at the next BEGIN, which says SERIALIZABLE."},
        {"name": "app_set_none", "session": "app", "sql": "conn.commit(); conn.isolation_level = None",
         "narration": "None is psycopg 3's default: no level in the BEGIN."},
        {"name": "app_show_default", "session": "app", "sql": f'conn.execute("{SHOW}")',
         "narration": "A plain BEGIN: the server's default level applies."},
        {"name": "dba_server_default", "session": "dba",
         "sql": "SELECT reset_val FROM pg_settings WHERE name = 'default_transaction_isolation'",
         "narration": "The server's configured default, which a plain BEGIN gets."},
    ],
    "expect": {},  # per level, below: the first transaction has the run's level
}

SHOW_SQL = "SELECT current_setting('transaction_isolation')"


def expectation(level: str) -> dict[str, object]:
    """The first transaction runs at the run's level; everything after it is the same at every level."""
    words = LEVELS[level]
    first = {"transaction_isolation": words.lower(), "conn.isolation_level": words.replace(" ", "_")}
    # PostgreSQL refuses a change of level after the first snapshot; asking for the level the
    # transaction already has is no change, and is accepted (check_transaction_isolation)
    too_late = level != "ser"
    return {
        "errors": {"app_set_transaction_sql": "25001"} if too_late else {},
        "rows": {
            "app_show": [[first]],
            "app_set_in_transaction": [[{
                "raised": "psycopg.ProgrammingError", "sqlstate": None,
                "message": "can't change 'isolation_level' now: connection in transaction status INTRANS",
                "conn.info.transaction_status": "INTRANS",
            }]],
            "app_show_unchanged": [[first]],
            "app_rollback": [[{"conn.info.transaction_status": "IDLE"}]],
            "app_set_between": [[{"conn.isolation_level": "SERIALIZABLE", "conn.info.transaction_status": "IDLE"}]],
            "app_show_serializable": [[{"transaction_isolation": "serializable", "conn.isolation_level": "SERIALIZABLE"}]],
            "app_set_none": [[{"conn.isolation_level": None}]],
            "app_show_default": [[{"transaction_isolation": "read committed", "conn.isolation_level": None}]],
            "dba_server_default": [["read committed"]],
        },
        "sent": {
            "app_show": [begin(level), SHOW_SQL],
            "app_set_in_transaction": [],
            "app_show_unchanged": [SHOW_SQL],
            "app_set_transaction_sql": ["SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"],
            "app_rollback": ["ROLLBACK"],
            "app_set_between": [],
            "app_show_serializable": [begin("ser"), SHOW_SQL],
            "app_set_none": ["COMMIT"],
            "app_show_default": ["BEGIN", SHOW_SQL],
        },
        "state": {"app_set_in_transaction": "idle in transaction",
                  "app_set_transaction_sql": "idle in transaction (aborted)" if too_late else "idle in transaction",
                  "app_set_between": "idle"},
        "note": f"the first transaction is {words}, the level set on the connection; a change takes "
                "effect at the next BEGIN, whatever the level"
                + ("" if too_late else "; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE is accepted late here "
                   "because it changes nothing"),
    }


SCENARIO["expect"] = {level: expectation(level) for level in LEVELS}


def level_name(conn: psycopg.Connection[Any]) -> str | None:
    """conn.isolation_level by its IsolationLevel name, or None (psycopg 3's default: no level in BEGIN)."""
    return conn.isolation_level.name if conn.isolation_level is not None else None


def show(conn: psycopg.Connection[Any]) -> dict[str, object]:
    level = conn.execute(SHOW).fetchone()[0]
    return {"transaction_isolation": level, "conn.isolation_level": level_name(conn)}


def make_serializable(conn: psycopg.Connection[Any]) -> None:
    conn.isolation_level = IsolationLevel.SERIALIZABLE


def set_between(conn: psycopg.Connection[Any]) -> dict[str, object]:
    make_serializable(conn)
    return {"conn.isolation_level": level_name(conn), "conn.info.transaction_status": status(conn)}


def set_none(conn: psycopg.Connection[Any]) -> dict[str, object]:
    conn.commit()
    conn.isolation_level = None
    return {"conn.isolation_level": level_name(conn)}


def set_transaction_sql(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")


def rollback(conn: psycopg.Connection[Any]) -> dict[str, object]:
    conn.rollback()
    return {"conn.info.transaction_status": status(conn)}


def play(run) -> None:  # type: ignore[no-untyped-def]
    run.step("app_show", show)
    run.step("app_set_in_transaction", refused(make_serializable))
    run.step("app_show_unchanged", show)
    run.step("app_set_transaction_sql", set_transaction_sql)
    run.step("app_rollback", rollback)
    run.step("app_set_between", set_between)
    run.step("app_show_serializable", show)
    run.step("app_set_none", set_none)
    run.step("app_show_default", show)
    run.step("dba_server_default")
