"""What a step did (StepResult), how errors are described, and how a failing statement of
txnlab's own or of a scenario's setup is reported, whatever driver sent it.

Each driver's way of sending a step is in runner.drivers; a step's database error is a
result like any other (SQLSTATE, exception class, message), never raised.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg2
import psycopg2.extensions

from txnlab.errors import ScenarioError, ServerError, TxnlabError
from txnlab.runner.names import unqualified
from txnlab.scenario.model import Scenario
from txnlab.timeline import ErrorInfo
from txnlab.values import PYTHON, python_value

INSUFFICIENT_PRIVILEGE = "42501"
QUOTED_NAME = re.compile(r'"([^"]+)"')  # what a server message names: relation "t", parameter "x"

# In a session that is not autocommit, COMMIT and ROLLBACK go through the driver, as
# application code does: running them as SQL would leave psycopg2 believing a transaction
# is still open, and it would stop sending its implicit BEGIN.
DRIVER_COMMANDS = re.compile(r"^\s*(COMMIT|ROLLBACK|END|ABORT)(\s+(WORK|TRANSACTION))?\s*;?\s*$", re.I)
COMMITS = ("COMMIT", "END")

Styles = tuple[str | None, str | None]  # a session's DateStyle and IntervalStyle, as the server reported them


@dataclass(frozen=True)
class StepResult:
    """What one statement did, measured on the session's thread (perf_counter seconds).

    `rows` hold the server's text of each value, None for NULL (a Python step: its return
    value as data, see txnlab.values). `type_oids` are the columns' types as the driver
    saw them; the scheduler names them in `column_types`. `styles` are the session's
    DateStyle and IntervalStyle afterwards, in which its dates and intervals were printed."""

    started: float
    ended: float
    columns: tuple[str, ...] | None = None
    rows: tuple[tuple[Any, ...], ...] | None = None
    type_oids: tuple[int, ...] | None = None
    column_types: tuple[str, ...] | None = None
    rowcount: int | None = None
    error: ErrorInfo | None = None
    transaction_status: str | None = None
    notices: tuple[str, ...] = ()
    styles: Styles | None = None
    status: str | None = None  # the command status the server answered (see Event.status)
    driver_sent_nothing: bool = False
    column_origins: tuple[tuple[int, int], ...] | None = None  # see Event.column_origins
    driver_status: str | None = None  # the driver's own view afterwards (see Event.driver_status)


def _server_error(exc: BaseException) -> Any:
    """The driver error behind an exception: itself, or the one a library wrapped (SQLAlchemy
    keeps it as `.orig`, others as the exception's cause). A driver error is psycopg2's or
    psycopg 3's `Error` or asyncpg's `PostgresError` (asyncpg is looked up only if it is loaded)."""
    kinds: list[type] = [psycopg2.Error, psycopg.Error]
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is not None:
        kinds.append(asyncpg.PostgresError)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, tuple(kinds)):
            return current
        seen.add(id(current))
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return None


def error_info(exc: BaseException) -> ErrorInfo:
    """Describe an exception the way the timeline shows it: its class, and the SQLSTATE,
    primary message, DETAIL, HINT and CONTEXT of the server error behind it, if any
    (psycopg2: `pgcode` and `diag`; psycopg 3: `sqlstate` and `diag`; asyncpg: `sqlstate`,
    `message`, `detail`, `hint`, `context`)."""
    exception = f"{type(exc).__module__}.{type(exc).__qualname__}"
    error = _server_error(exc)
    text = str(error if error is not None else exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if error is None:
        return ErrorInfo(exception=exception, message=first)
    diag = getattr(error, "diag", None)
    if diag is None:  # asyncpg: the fields are the exception's own
        return ErrorInfo(
            exception=exception, message=error.message or first, sqlstate=error.sqlstate,
            detail=error.detail, hint=error.hint, context=error.context,
        )
    return ErrorInfo(
        exception=exception, message=diag.message_primary or first,
        sqlstate=error.pgcode if isinstance(error, psycopg2.Error) else error.sqlstate,
        detail=diag.message_detail, hint=diag.message_hint, context=diag.context,
    )


def notice_text(severity: str, message: str, detail: str | None = None, hint: str | None = None) -> str:
    """A notice as libpq prints it at its default verbosity, the text psycopg2 keeps in
    `connection.notices` ("WARNING:  there is no transaction in progress", then a DETAIL and a
    HINT line when the notice has them; fe-protocol3.c, pqBuildErrorMessage3), built from the
    fields psycopg 3 and asyncpg hand over."""
    lines = [f"{severity}:  {message}"]
    lines += [f"{label}:  {value}" for label, value in (("DETAIL", detail), ("HINT", hint)) if value]
    return "\n".join(lines)


def python_step_result(
    started: float, value: Any, error: ErrorInfo | None, *, transaction_status: str, driver_status: str,
    notices: tuple[str, ...],
) -> StepResult:
    """A Python step's result, whatever its driver: the value its function returned as one cell
    of data (see `python_value`; none for None), or the error it raised; `started` and the end
    are perf_counter seconds; the statuses and notices are read from the session right after."""
    rows = ((python_value(value),),) if value is not None else None
    return StepResult(
        started=started, ended=time.perf_counter(), columns=("result",) if rows else None, rows=rows,
        column_types=(PYTHON,) if rows else None, error=error, transaction_status=transaction_status,
        notices=notices, driver_status=driver_status,
    )


def commit_reply(command: str, failed: bool) -> str:
    """The command status the server answers to the COMMIT or ROLLBACK a driver's `commit()`
    or `rollback()` sends, when the driver drops it. `command` is the scenario's word (COMMIT,
    END, ROLLBACK, ABORT); `failed`: the transaction had failed before. A COMMIT in a failed
    transaction rolls back and is answered ROLLBACK, "including the command tag"
    (https://www.postgresql.org/docs/current/sql-commit.html); otherwise each is answered with
    its own name, also outside a transaction (with a WARNING). A COMMIT that fails (a deferred
    constraint, a serialization failure) raises instead and has no status."""
    if command.upper() not in COMMITS:
        return "ROLLBACK"
    return "ROLLBACK" if failed else "COMMIT"


class ConnectionLost(ServerError):
    """One of txnlab's own connections (admin, lock monitor, schema builder, a session) died:
    the run cannot go on. The CLI ends with exit 3; the scratch database's forced drop ends the rest."""


class CannotRun(ServerError):
    """This server cannot run one scenario (a missing privilege, extension or resource), though
    it can run others: the cell is reported as "could not run" and the rest go on."""


# SQLSTATE classes that are the server's side rather than the scenario file's: connection
# exceptions (08), operator intervention (57P: terminated, shutting down), insufficient
# resources (53), system errors (58), internal errors (XX), and features this server lacks (0A000).
# See https://www.postgresql.org/docs/current/errcodes-appendix.html
LOST_CONNECTION_CLASSES = ("08", "57P")
SERVER_SIDE_CLASSES = ("53", "58", "XX", "0A000", INSUFFICIENT_PRIVILEGE)


def lost_connection(exc: BaseException, conn: psycopg2.extensions.connection | None = None) -> bool:
    """Did `exc` come from a connection that is now unusable (terminated, network gone)?"""
    if conn is not None and conn.closed:
        return True
    if not isinstance(exc, psycopg2.Error):
        return False
    if exc.pgcode is None:
        return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))
    return exc.pgcode.startswith(LOST_CONNECTION_CLASSES)


@contextmanager
def guarded(conn: psycopg2.extensions.connection, label: str) -> Iterator[None]:
    """Turn the loss of `conn` (txnlab's own connection named `label`, e.g. "the lock
    monitor's connection") into ConnectionLost; other errors pass through."""
    try:
        yield
    except psycopg2.Error as exc:
        if lost_connection(exc, conn):
            raise connection_lost(label, error_info(exc)) from None
        raise


def connection_lost(label: str, info: ErrorInfo | None) -> ConnectionLost:
    """The one line that ends a run whose connection `label` died, with the server's reason."""
    reason = (f"{info.sqlstate} " if info.sqlstate else "") + info.message if info else "the connection was closed"
    return ConnectionLost(f"lost {label} to PostgreSQL: {reason}")


def statement_line(sql: str, exc: psycopg2.Error, skipped: int = 0) -> int:
    """Lines into `sql` (0 for its first) where the error is, as far as the server says.

    `statement_position` counts characters (1-based) in the statement as sent, which may
    start with `skipped` characters txnlab put in front of the scenario's own SQL. Errors
    without a position (a missing extension, a privilege) are placed at the first line
    naming what the message quotes (`extension "x" is not available`), else the first line."""
    diag = exc.diag
    return position_line(sql, diag.statement_position if diag else None, diag.message_primary if diag else None, skipped)


def position_line(sql: str, position: str | None, message: str | None, skipped: int = 0) -> int:
    """`statement_line` from the error's fields as any driver reports them: the server's
    POSITION (1-based characters, as text) and primary message."""
    if position and position.isdigit():
        offset = max(int(position) - 1 - skipped, 0)
    else:
        quoted = QUOTED_NAME.search(message or "")
        offset = max(sql.lower().find(quoted.group(1).lower()), 0) if quoted else 0
    return sql[:offset].count("\n")


def scenario_sql_failure(
    scenario: Scenario, key: str, what: str, exc: psycopg2.Error, sql: str = "", *, skipped: int = 0,
    connection: psycopg2.extensions.connection | None = None, label: str = "the admin connection",
    schema: str | None = None,
) -> TxnlabError:
    """A scenario's own SQL (`what`, found at `key` in `scenario.lines`) failed.

    A SQL error (syntax, undefined table, constraint...) is the file's fault: ScenarioError,
    exit 2. A missing privilege, resource, extension or feature is the server's side:
    CannotRun, exit 3. A lost connection (`label` names it) is ConnectionLost. Either way the
    message points at the failing line: `FILE:LINE: WHAT failed: SQLSTATE message`, without
    the run's `schema` (see runner.names)."""
    if lost_connection(exc, connection):
        return connection_lost(label, error_info(exc))
    where = scenario.where(key, statement_line(sql, exc, skipped))
    return sql_failure(where, what, error_info(exc), schema)


def sql_failure(where: str, what: str, info: ErrorInfo, schema: str | None = None) -> TxnlabError:
    """A scenario's own SQL (`what`, at `where`: `FILE:LINE`) failed with `info`: CannotRun
    (exit 3) for the server's side, else ScenarioError (exit 2); see `scenario_sql_failure`.
    The message is told without the run's `schema` (see runner.names)."""
    message = unqualified(info.message, schema)
    problem = f"{what} failed: " + (f"{info.sqlstate} " if info.sqlstate else "") + message
    if (info.sqlstate or "").startswith(SERVER_SIDE_CLASSES):
        return CannotRun(f"{where}: {problem}")
    return ScenarioError(where, problem)
