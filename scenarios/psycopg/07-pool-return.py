"""psycopg_pool on return: pool.connection() commits; putconn() of an open transaction rolls it back; session state stays.

A Python scenario, because the lesson is psycopg_pool's API. The pool's connections are
opened from `run.dsn`, so they go through txnlab's wire tap too, and each step's "sent"
shows what the pool's connection put on the wire while the step ran. A teller reads the
server's view of the pool's backend from pg_stat_activity.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

SCENARIO = {
    "name": "psycopg-pool-return",
    "title": "psycopg_pool: `with pool.connection()` commits, putconn() rolls an open transaction back, and a SET outlives the checkout",
    "summary": (
        "A psycopg_pool ConnectionPool with one connection. `with pool.connection() as conn:` "
        "is the pool's way: at the end of the block the connection commits (it rolls back if an "
        "exception left the block) and goes back to the pool; the captured traffic shows BEGIN, "
        "the INSERT and COMMIT. Code that takes a connection with getconn() and gives it back "
        "with putconn() in the middle of a transaction, as code does when an exception skips the "
        "commit, loses its work: the pool sends ROLLBACK before it keeps the connection, and logs "
        "a warning (\"rolling back returned connection\"). That ROLLBACK is all the pool does: "
        "it sends no RESET ALL, DISCARD or pg_advisory_unlock_all() unless it is given a reset= "
        "function, so a SET committed during one checkout is still in force "
        "in the next one, on the same backend. The pool's connections have no isolation level "
        "set (their BEGIN is plain), so every level of the run behaves the same."
    ),
    "tags": ["psycopg", "driver", "pool", "rollback", "python"],
    "references": [
        "https://www.psycopg.org/psycopg3/docs/advanced/pool.html",
        "https://www.psycopg.org/psycopg3/docs/api/pool.html#psycopg_pool.ConnectionPool.connection",
        "https://www.psycopg.org/psycopg3/docs/api/pool.html#psycopg_pool.ConnectionPool.putconn",
        "https://www.postgresql.org/docs/current/sql-set.html",
    ],
    "capture": True,
    "setup": "CREATE TABLE orders (id int PRIMARY KEY, placed_by text NOT NULL);",
    "sessions": {"app": {"driver": "psycopg"}, "teller": {"autocommit": True}},
    "steps": [
        {"name": "app_pool_open", "session": "app",
         "sql": "pool = ConnectionPool(dsn, min_size=1, max_size=1, open=False); pool.open(wait=True)",
         "narration": "The pool opens its one connection. Opening sends no statement."},
        {"name": "app_with_pool_connection", "session": "app",
         "sql": "with pool.connection() as conn:\n    conn.execute(\"INSERT INTO orders VALUES (%s, %s)\", [1, 'with block'])",
         "narration": "The block ends normally: the connection commits, then returns to the pool."},
        {"name": "app_putconn_in_transaction", "session": "app",
         "sql": "conn = pool.getconn()\nconn.execute(\"INSERT INTO orders VALUES (%s, %s)\", [2, 'getconn'])\n"
                "pool.putconn(conn)  # no commit()",
         "narration": "Given back with its transaction open: the pool rolls it back, and logs a warning."},
        {"name": "teller_orders", "session": "teller", "sql": "SELECT id, placed_by FROM orders ORDER BY id",
         "narration": "Only the order of the `with` block was committed."},
        {"name": "teller_pool_backend", "session": "teller",
         "sql": "SELECT state, query FROM pg_stat_activity\n"
                " WHERE datname = current_database() AND application_name = 'orders-pool'",
         "narration": "The server's view of the pool's backend: idle, and its last statement was the "
                      "pool's ROLLBACK."},
        {"name": "app_set_in_checkout", "session": "app",
         "sql": "with pool.connection() as conn:\n    conn.execute(\"SET statement_timeout = '5s'\")",
         "narration": "One checkout changes a setting of the session, and the block commits it."},
        {"name": "app_next_checkout", "session": "app",
         "sql": "with pool.connection() as conn:\n    conn.execute(\"SHOW statement_timeout\")",
         "narration": "The next checkout gets the same backend, with the setting still in force: "
                      "returning the connection did not reset it."},
        {"name": "app_pool_close", "session": "app", "sql": "pool.close()"},
    ],
    "invariants": {"only_the_committed_order": "SELECT array_agg(id) = '{1}' FROM orders"},
    "expect": {
        "all": {
            "rows": {
                "app_pool_open": [[{"connections in the pool": 1}]],
                "app_with_pool_connection": [[{"conn.info.transaction_status after the block": "IDLE"}]],
                "app_putconn_in_transaction": [[{
                    "before putconn()": "INTRANS", "after putconn()": "IDLE",
                    "the pool logged": ["rolling back returned connection"],
                }]],
                "teller_orders": [[1, "with block"]],
                "teller_pool_backend": [["idle", "ROLLBACK"]],
                "app_set_in_checkout": [[{"same backend": True}]],
                "app_next_checkout": [[{"statement_timeout": "5s", "same backend": True}]],
                "app_pool_close": [[{"pool.closed": True}]],
            },
            "sent": {
                "app_pool_open": [],
                "app_with_pool_connection": ["BEGIN", "INSERT INTO orders VALUES ($1, $2)", "COMMIT"],
                "app_putconn_in_transaction": ["BEGIN", "INSERT INTO orders VALUES ($1, $2)", "ROLLBACK"],
                "app_set_in_checkout": ["BEGIN", "SET statement_timeout = '5s'", "COMMIT"],
                "app_next_checkout": ["BEGIN", "SHOW statement_timeout", "COMMIT"],
                "app_pool_close": [],
            },
            "invariants": {"only_the_committed_order": True},
            "note": "the same at every level: the pool's connections name no level in their BEGIN, and "
                    "what the pool sends on return (ROLLBACK, or nothing) does not depend on it",
        },
    },
}


class Warnings(logging.Handler):
    """Collects the messages psycopg_pool logs (logger "psycopg.pool") while a step runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().split(":")[0])  # without the connection's repr


def play(run) -> None:  # type: ignore[no-untyped-def]
    pool = ConnectionPool(run.dsn, min_size=1, max_size=1, open=False, name="orders",
                          kwargs={"application_name": "orders-pool"})
    held: dict[str, Any] = {}

    def open_pool(_own: psycopg.Connection[Any]) -> dict[str, object]:
        pool.open(wait=True)
        return {"connections in the pool": pool.get_stats()["pool_size"]}

    def with_block(_own: psycopg.Connection[Any]) -> dict[str, object]:
        with pool.connection() as conn:
            conn.execute("INSERT INTO orders VALUES (%s, %s)", [1, "with block"])
            held["backend"] = conn.info.backend_pid
        return {"conn.info.transaction_status after the block": conn.info.transaction_status.name}

    def putconn_in_transaction(_own: psycopg.Connection[Any]) -> dict[str, object]:
        log = logging.getLogger("psycopg.pool")
        warnings = Warnings()
        log.addHandler(warnings)
        try:
            conn = pool.getconn()
            conn.execute("INSERT INTO orders VALUES (%s, %s)", [2, "getconn"])
            before = conn.info.transaction_status.name
            pool.putconn(conn)
        finally:
            log.removeHandler(warnings)
        return {"before putconn()": before, "after putconn()": conn.info.transaction_status.name,
                "the pool logged": warnings.messages}

    def set_in_checkout(_own: psycopg.Connection[Any]) -> dict[str, object]:
        with pool.connection() as conn:
            conn.execute("SET statement_timeout = '5s'")
        return {"same backend": conn.info.backend_pid == held["backend"]}

    def next_checkout(_own: psycopg.Connection[Any]) -> dict[str, object]:
        with pool.connection() as conn:
            timeout = conn.execute("SHOW statement_timeout").fetchone()[0]
        return {"statement_timeout": timeout, "same backend": conn.info.backend_pid == held["backend"]}

    def close_pool(_own: psycopg.Connection[Any]) -> dict[str, object]:
        pool.close()
        return {"pool.closed": pool.closed}

    try:
        run.step("app_pool_open", open_pool)
        run.step("app_with_pool_connection", with_block)
        run.step("app_putconn_in_transaction", putconn_in_transaction)
        run.step("teller_orders")
        run.step("teller_pool_backend")
        run.step("app_set_in_checkout", set_in_checkout)
        run.step("app_next_checkout", next_checkout)
        run.step("app_pool_close", close_pool)
    finally:
        pool.close()
