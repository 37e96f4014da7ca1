"""Send one statement on one connection and capture everything the timeline needs.

This runs on the session's own thread. It never raises for database errors: an
error is a result like any other (SQLSTATE, exception class, message).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extensions

from txnlab.errors import ScenarioError, ServerError, TxnlabError
from txnlab.scenario.model import Scenario
from txnlab.timeline import TRANSACTION_STATUS, ErrorInfo, plain

INSUFFICIENT_PRIVILEGE = "42501"

# In a psycopg2-style session, COMMIT and ROLLBACK go through the driver, as application
# code does: running them as SQL would leave psycopg2 believing a transaction is still
# open, and it would stop sending its implicit BEGIN.
DRIVER_COMMANDS = re.compile(r"^\s*(COMMIT|ROLLBACK|END|ABORT)(\s+(WORK|TRANSACTION))?\s*;?\s*$", re.I)


@dataclass(frozen=True)
class StepResult:
    """What one statement did, measured on the session's thread (perf_counter seconds)."""

    started: float
    ended: float
    columns: tuple[str, ...] | None = None
    rows: tuple[tuple[Any, ...], ...] | None = None
    rowcount: int | None = None
    error: ErrorInfo | None = None
    transaction_status: str | None = None
    notices: tuple[str, ...] = ()


def _driver_error(exc: BaseException) -> psycopg2.Error | None:
    """The psycopg2 error behind an exception: itself, or the one a library wrapped
    (SQLAlchemy keeps it as `.orig`, others as the exception's cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, psycopg2.Error):
            return current
        seen.add(id(current))
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return None


def error_info(exc: BaseException) -> ErrorInfo:
    """Describe an exception the way the timeline shows it: its class, and the SQLSTATE and
    primary message of the server error behind it, if any."""
    exception = f"{type(exc).__module__}.{type(exc).__qualname__}"
    driver_error = _driver_error(exc)
    if driver_error is not None:
        diag_message = driver_error.diag.message_primary if driver_error.diag else None
        message = diag_message or (str(driver_error).strip().splitlines() or [type(exc).__name__])[0]
        return ErrorInfo(exception=exception, message=message, sqlstate=driver_error.pgcode)
    text = str(exc).strip()
    return ErrorInfo(exception=exception, message=text.splitlines()[0] if text else type(exc).__name__)


def transaction_status(conn: psycopg2.extensions.connection) -> str:
    if conn.closed:
        return "closed"
    return TRANSACTION_STATUS.get(conn.get_transaction_status(), "unknown")


def take_notices(conn: psycopg2.extensions.connection) -> tuple[str, ...]:
    notices = tuple(n.strip() for n in conn.notices)
    del conn.notices[:]
    return notices


def execute(conn: psycopg2.extensions.connection, sql: str) -> StepResult:
    """Run `sql`; COMMIT/ROLLBACK use the driver's methods unless the connection autocommits."""
    started = time.perf_counter()
    columns = rows = rowcount = error = None
    try:
        command = DRIVER_COMMANDS.match(sql)
        if command and not conn.autocommit:
            if command.group(1).upper() in ("COMMIT", "END"):
                conn.commit()
            else:
                conn.rollback()
        else:
            with conn.cursor() as cur:
                cur.execute(sql)
                rowcount = cur.rowcount
                if cur.description is not None:
                    columns = tuple(d.name for d in cur.description)
                    rows = tuple(tuple(plain(v) for v in row) for row in cur.fetchall())
    except Exception as exc:  # noqa: BLE001 - every failure becomes part of the timeline
        error = error_info(exc)
    ended = time.perf_counter()
    return StepResult(
        started=started,
        ended=ended,
        columns=columns,
        rows=rows,
        rowcount=rowcount,
        error=error,
        transaction_status=transaction_status(conn),
        notices=take_notices(conn),
    )


def call(conn: psycopg2.extensions.connection, function: Callable[[Any], Any]) -> StepResult:
    """Run a Python scenario's `function(conn)` on the session's thread: its return value is
    the step's result, an exception its error; the status is read from `conn` right after."""
    started = time.perf_counter()
    value, error = None, None
    try:
        value = function(conn)
    except Exception as exc:  # noqa: BLE001 - a failing call is part of the lesson
        error = error_info(exc)
    rows = ((plain(value),),) if value is not None else None
    return StepResult(
        started=started,
        ended=time.perf_counter(),
        columns=("result",) if rows else None,
        rows=rows,
        error=error,
        transaction_status=transaction_status(conn),
        notices=take_notices(conn) if not conn.closed else (),
    )


def scenario_sql_failure(scenario: Scenario, what: str, exc: psycopg2.Error) -> TxnlabError:
    """A scenario's own SQL (setup, teardown, invariant) failed: the file's fault (exit 2),
    unless the role lacks a privilege the scenario needs (exit 3)."""
    message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if exc.pgcode is None or exc.pgcode.startswith(("08", "57P")):
        return ServerError(f"scenario {scenario.name}: {what}: lost the connection to PostgreSQL: {message}")
    if exc.pgcode == INSUFFICIENT_PRIVILEGE:
        return ServerError(f"scenario {scenario.name}: {what}: {message} (the role lacks a privilege it needs)")
    return ScenarioError(str(scenario.source), f"{what} failed: {message}")
