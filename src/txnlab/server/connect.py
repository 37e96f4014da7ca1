"""Opening psycopg2 connections with errors a user can read on one line."""

from __future__ import annotations

from typing import Any

import psycopg2
import psycopg2.extensions

from txnlab.errors import ServerError

CONNECT_TIMEOUT_SECONDS = 3  # an unanswering server must be reported within 5 s, with room to spare


def with_params(dsn: str, **params: Any) -> str:
    """The same server, with some connection parameters replaced (dbname, options...)."""
    return psycopg2.extensions.make_dsn(dsn, **params)


def redact(dsn: str) -> str:
    """A DSN fit for an error message: no password."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "<unparsable DSN>"
    params.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in params.items())


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(dsn: str, *, autocommit: bool = False, **params: Any) -> psycopg2.extensions.connection:
    """Connect, giving up within a few seconds, and turn failures into one ServerError line."""
    try:
        parsed = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError as exc:
        raise ServerError(f"invalid DSN: {first_line(exc)}") from None
    if "connect_timeout" not in parsed and "connect_timeout" not in params:
        params["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    try:
        conn = psycopg2.connect(dsn, **params)
    except psycopg2.OperationalError as exc:
        raise ServerError(f"cannot connect to PostgreSQL ({redact(dsn)}): {first_line(exc)}") from None
    conn.autocommit = autocommit
    return conn
