"""Application-side mechanics shared by the psycopg-* scenarios (psycopg 3).

- psycopg 3's own view of a connection in words (`status`: `conn.info.transaction_status`'s
  name, or "closed");
- an exception's full class name (`qualified_name`) and what a refused call raised
  (`refused`), as the steps report them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg


def status(conn: psycopg.Connection[Any]) -> str:
    """psycopg 3's view of the connection: IDLE, INTRANS, INERROR... (pq.TransactionStatus), or "closed"."""
    return "closed" if conn.closed else conn.info.transaction_status.name


def qualified_name(exc: BaseException) -> str:
    """The exception's class as the caller would import it, e.g. psycopg.errors.CheckViolation."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def refused(action: Callable[[psycopg.Connection[Any]], object]) -> Callable[[psycopg.Connection[Any]], dict[str, object]]:
    """A step that tries `action` on the connection and reports what psycopg raised (class,
    SQLSTATE, message) and the connection's status afterwards; {"raised": None} if nothing."""

    def attempt(conn: psycopg.Connection[Any]) -> dict[str, object]:
        try:
            action(conn)
        except psycopg.Error as exc:
            outcome: dict[str, object] = {
                "raised": qualified_name(exc), "sqlstate": exc.sqlstate, "message": str(exc).strip(),
            }
        else:
            outcome = {"raised": None}
        outcome["conn.info.transaction_status"] = status(conn)
        return outcome

    return attempt


# The run's level, as psycopg 3 names it in the BEGIN it sends (txnlab sets the run's level
# as conn.isolation_level on each session that is not autocommit).
LEVELS = {"ru": "READ UNCOMMITTED", "rc": "READ COMMITTED", "rr": "REPEATABLE READ", "ser": "SERIALIZABLE"}


def begin(level: str) -> str:
    """The BEGIN psycopg 3 sends at `level` (a level key: ru, rc, rr, ser)."""
    return f"BEGIN ISOLATION LEVEL {LEVELS[level]}"
