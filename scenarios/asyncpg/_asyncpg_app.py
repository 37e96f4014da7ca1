"""Application-side mechanics shared by the asyncpg-* scenarios.

- `in_transaction(conn)`: asyncpg's own view of a connection, `is_in_transaction()`, as the
  steps report it (the timeline's [status] line is the session's own connection's);
- `qualified_name(exc)`: an exception's class as the application would import it;
- `pool_arguments(dsn)`: the run's database as `asyncpg.create_pool()`'s keyword arguments.
  asyncpg reads a URL or keywords, not a libpq connection string like `run.dsn`; txnlab's
  asyncpg sessions translate it the same way (host, port, user, database, the run's
  search_path as a server setting, TLS off for the wire tap).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from txnlab.runner.drivers.asyncpg import connect_arguments


def in_transaction(conn: asyncpg.Connection) -> bool:
    """asyncpg's view: True inside a transaction it or the application started, failed or not."""
    return conn.is_in_transaction()


def qualified_name(exc: BaseException) -> str:
    """The exception's class as the caller would import it, e.g. asyncpg.exceptions.CheckViolationError."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def pool_arguments(dsn: str) -> dict[str, Any]:
    """`asyncpg.create_pool(**pool_arguments(run.dsn), ...)`: the run's database, through the tap."""
    return connect_arguments(dsn)
