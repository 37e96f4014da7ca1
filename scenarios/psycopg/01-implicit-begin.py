"""psycopg 3 begins implicitly: a plain SELECT leaves the session idle in transaction.

A Python scenario, because the lesson is psycopg 3's own API: `conn.execute()` with a
parameter, as application code writes it.
"""

from __future__ import annotations

from typing import Any

import psycopg

from _psycopg_app import LEVELS, begin, status

SELECT = "SELECT balance FROM accounts WHERE id = %s"

SCENARIO = {
    "name": "psycopg-implicit-begin",
    "title": "psycopg 3 sends BEGIN before a plain SELECT; the server sees the session idle in transaction",
    "summary": (
        "The psycopg2 lesson psycopg2-implicit-begin, with psycopg 3. The application runs "
        "conn.execute(\"SELECT balance FROM accounts WHERE id = %s\", [1]) and never calls "
        "commit(). psycopg 3 is not in autocommit mode by default either: before the first "
        "statement it sends BEGIN (naming the isolation level when one is set on the "
        "connection, here the run's), then the SELECT. Unlike psycopg2, it binds the parameter "
        "on the server: the SELECT goes out as a Parse message with $1 in it, and that is also "
        "the text a DBA reads in pg_stat_activity. The session stays idle in transaction, holding "
        "ACCESS SHARE on accounts, until commit(): a migration's ALTER TABLE waits for it. Every "
        "level behaves the same; only the level named in the BEGIN differs, and at SERIALIZABLE "
        "the session also holds an SIRead lock, which blocks nobody."
    ),
    "tags": ["psycopg", "driver", "implicit-transaction", "idle-in-transaction", "locks", "python"],
    "references": [
        "https://www.psycopg.org/psycopg3/docs/basic/transactions.html",
        "https://www.psycopg.org/psycopg3/docs/basic/from_pg2.html#server-side-binding",
        "https://www.psycopg.org/psycopg3/docs/api/connections.html#psycopg.Connection.execute",
        "https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 250);"
    ),
    "sessions": {
        "app": {"driver": "psycopg"},
        "dba": {"autocommit": True},
        "migration": {},
    },
    "steps": [
        {"name": "app_select", "session": "app", "sql": 'conn.execute("SELECT balance FROM accounts WHERE id = %s", [1])',
         "narration": "psycopg 3 sends BEGIN, then the SELECT with $1 for the parameter. The session is "
                      "now idle in transaction and holds ACCESS SHARE on accounts."},
        {"name": "dba_look", "session": "dba",
         "sql": "SELECT a.state, a.query, l.mode\n"
                "  FROM pg_stat_activity a JOIN pg_locks l USING (pid)\n"
                " WHERE a.datname = current_database() AND l.relation = 'accounts'::regclass\n"
                "   AND l.mode <> 'SIReadLock'",
         "narration": "The DBA sees the application's session idle in transaction, its last query as "
                      "the server received it ($1, not 1), with its ACCESS SHARE lock."},
        {"name": "migration_alter", "session": "migration", "sql": "ALTER TABLE accounts ADD COLUMN email text",
         "narration": "ACCESS EXCLUSIVE conflicts with the idle session's ACCESS SHARE: the migration waits."},
        {"name": "app_commit", "session": "app", "sql": "conn.commit()",
         "narration": "commit() sends COMMIT: the session is idle, holds nothing, and the ALTER goes ahead."},
        {"name": "migration_commit", "session": "migration", "sql": "COMMIT"},
    ],
    "expect": {},  # per level, below: only the level named in the BEGIN differs
}

SIREAD = ["SIReadLock on accounts (tuple)", "SIReadLock on index accounts_pkey (page)"]


def expectation(level: str) -> dict[str, object]:
    """What every level shows; SERIALIZABLE adds the SIRead locks, kept past the commit while
    the migration's serializable transaction, which overlapped, is still open."""
    siread = SIREAD if level == "ser" else []
    return {
        "blocked": ["migration_alter"],
        "blocked_by": {"migration_alter": ["app"]},
        "rows": {
            "app_select": [[{"balance": 100, "conn.info.transaction_status": "INTRANS"}]],
            "dba_look": [["idle in transaction", "SELECT balance FROM accounts WHERE id = $1", "AccessShareLock"]],
            "app_commit": [[{"conn.info.transaction_status": "IDLE"}]],
        },
        "sent": {
            "app_select": [begin(level), "SELECT balance FROM accounts WHERE id = $1"],
            "app_commit": ["COMMIT"],
        },
        "state": {"app_select": "idle in transaction", "app_commit": "idle"},
        "holds": {
            "app_select": ["AccessShareLock on accounts", "AccessShareLock on index accounts_pkey", *siread],
            "app_commit": siread,
        },
        "note": f"the same at every level but for the BEGIN, which names {LEVELS[level]}"
                + (" and the SIRead locks, which block nobody" if siread else ""),
    }


SCENARIO["expect"] = {level: expectation(level) for level in LEVELS}


def select_balance(conn: psycopg.Connection[Any]) -> dict[str, object]:
    balance = conn.execute(SELECT, [1]).fetchone()[0]
    return {"balance": balance, "conn.info.transaction_status": status(conn)}


def commit(conn: psycopg.Connection[Any]) -> dict[str, object]:
    conn.commit()
    return {"conn.info.transaction_status": status(conn)}


def play(run) -> None:  # type: ignore[no-untyped-def]
    run.step("app_select", select_balance)
    run.step("dba_look")
    run.step("migration_alter")
    run.step("app_commit", commit)
    run.step("migration_commit")
