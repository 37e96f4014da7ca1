"""Send one statement on one connection and capture everything the timeline needs.

This runs on the session's own thread. It never raises for database errors: an
error is a result like any other (SQLSTATE, exception class, message).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extensions

from txnlab.errors import ScenarioError, ServerError, TxnlabError
from txnlab.runner.names import unqualified
from txnlab.scenario.model import Scenario
from txnlab.timeline import TRANSACTION_STATUS, ErrorInfo
from txnlab.values import PYTHON, python_value

INSUFFICIENT_PRIVILEGE = "42501"
QUOTED_NAME = re.compile(r'"([^"]+)"')  # what a server message names: relation "t", parameter "x"

# In a psycopg2-style session, COMMIT and ROLLBACK go through the driver, as application
# code does: running them as SQL would leave psycopg2 believing a transaction is still
# open, and it would stop sending its implicit BEGIN.
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
    """Describe an exception the way the timeline shows it: its class, and the SQLSTATE,
    primary message, DETAIL, HINT and CONTEXT of the server error behind it, if any."""
    exception = f"{type(exc).__module__}.{type(exc).__qualname__}"
    driver_error = _driver_error(exc)
    if driver_error is not None:
        diag_message = driver_error.diag.message_primary if driver_error.diag else None
        message = diag_message or (str(driver_error).strip().splitlines() or [type(exc).__name__])[0]
        diag = driver_error.diag
        return ErrorInfo(
            exception=exception, message=message, sqlstate=driver_error.pgcode,
            detail=diag.message_detail if diag else None, hint=diag.message_hint if diag else None,
            context=diag.context if diag else None,
        )
    text = str(exc).strip()
    return ErrorInfo(exception=exception, message=text.splitlines()[0] if text else type(exc).__name__)


def transaction_status(conn: psycopg2.extensions.connection) -> str:
    if conn.closed:
        return "closed"
    return TRANSACTION_STATUS.get(conn.get_transaction_status(), "unknown")


def styles(conn: psycopg2.extensions.connection) -> Styles:
    """The session's DateStyle and IntervalStyle, from what the server reported (no query)."""
    return conn.get_parameter_status("DateStyle"), conn.get_parameter_status("IntervalStyle")


def take_notices(conn: psycopg2.extensions.connection) -> tuple[str, ...]:
    notices = tuple(n.strip() for n in conn.notices)
    del conn.notices[:]
    return notices


def _server_text(value: str | None, _cursor: Any) -> str | None:
    return value


def server_text_cursor(conn: psycopg2.extensions.connection) -> psycopg2.extensions.cursor:
    """A cursor that returns every value as the server sent it, as text (None for NULL).

    The typecaster is registered on this cursor only, for every type psycopg2 or the
    connection would convert (arrays included; types it does not know already arrive as
    text): a Python scenario's code on the same connection still gets Python values."""
    cur = conn.cursor()
    oids = tuple({*psycopg2.extensions.string_types, *conn.string_types})
    psycopg2.extensions.register_type(psycopg2.extensions.new_type(oids, "SERVER_TEXT", _server_text), cur)
    return cur
def driver_reply(command: str, before: int) -> str:
    """The command status the server answers to the COMMIT or ROLLBACK that psycopg2's
    `commit()` or `rollback()` sends, from libpq's transaction status `before` the call.

    `command` is the scenario's word (COMMIT, END, ROLLBACK, ABORT); psycopg2 itself always
    sends COMMIT or ROLLBACK (psycopg/pqpath.c, pq_commit and pq_abort_locked). A COMMIT in
    a failed transaction rolls back and is answered ROLLBACK, "including the command tag"
    (https://www.postgresql.org/docs/current/sql-commit.html); otherwise each is answered
    with its own name, also outside a transaction (with a WARNING). psycopg2 drops the
    reply, hence this; tests/test_server_answers.py checks it against the server's own
    reply in every transaction status. A COMMIT that fails (a deferred constraint, a
    serialization failure) raises instead and has no status.
    """
    if command.upper() not in COMMITS:
        return "ROLLBACK"
    return "ROLLBACK" if before == psycopg2.extensions.TRANSACTION_STATUS_INERROR else "COMMIT"


def _end_transaction(conn: psycopg2.extensions.connection, command: str) -> str | None:
    """COMMIT or ROLLBACK through the driver, as application code does; the server's reply,
    or None when psycopg2 sent nothing: it sends COMMIT or ROLLBACK only while a transaction
    it began is open (pq_commit, pq_abort_locked: `conn->status != CONN_STATUS_BEGIN`)."""
    sends = conn.status == psycopg2.extensions.STATUS_BEGIN
    before = conn.get_transaction_status()
    if command.upper() in COMMITS:
        conn.commit()
    else:
        conn.rollback()
    return driver_reply(command, before) if sends else None


def execute(conn: psycopg2.extensions.connection, sql: str) -> StepResult:
    """Run `sql`; COMMIT/ROLLBACK use the driver's methods unless the connection autocommits.
    Rows come back as the server's text (see `server_text_cursor`); the result keeps the
    server's command status (`cursor.statusmessage`: INSERT 0 1, COMMIT, ROLLBACK...; for the
    driver's COMMIT/ROLLBACK see `driver_reply`)."""
    started = time.perf_counter()
    columns = rows = rowcount = error = type_oids = status = origins = None
    sent_nothing = False
    try:
        command = DRIVER_COMMANDS.match(sql)
        if command and not conn.autocommit:
            status = _end_transaction(conn, command.group(1))
            sent_nothing = status is None
        else:
            with server_text_cursor(conn) as cur:
                cur.execute(sql)
                status = cur.statusmessage
                rowcount = cur.rowcount if cur.rowcount >= 0 else None  # -1: psycopg2's "no count"
                if cur.description is not None:
                    columns = tuple(d.name for d in cur.description)
                    type_oids = tuple(d.type_code for d in cur.description)
                    origins = tuple((d.table_oid or 0, d.table_column or 0) for d in cur.description)
                    rows = tuple(tuple(row) for row in cur.fetchall())
    except Exception as exc:  # noqa: BLE001 - every failure becomes part of the timeline
        error = error_info(exc)
    ended = time.perf_counter()
    return StepResult(
        started=started,
        ended=ended,
        columns=columns,
        rows=rows,
        type_oids=type_oids,
        rowcount=rowcount,
        error=error,
        transaction_status=transaction_status(conn),
        notices=take_notices(conn),
        styles=styles(conn) if not conn.closed else None,
        status=status,
        driver_sent_nothing=sent_nothing,
        column_origins=origins,
    )


def call(conn: psycopg2.extensions.connection, function: Callable[[Any], Any]) -> StepResult:
    """Run a Python scenario's `function(conn)` on the session's thread: its return value is
    the step's result (one cell, as data: see `python_value`), an exception its error;
    the status is read from `conn` right after."""
    started = time.perf_counter()
    value, error = None, None
    try:
        value = function(conn)
    except Exception as exc:  # noqa: BLE001 - a failing call is part of the lesson
        error = error_info(exc)
    rows = ((python_value(value),),) if value is not None else None
    return StepResult(
        started=started,
        ended=time.perf_counter(),
        columns=("result",) if rows else None,
        rows=rows,
        column_types=(PYTHON,) if rows else None,
        error=error,
        transaction_status=transaction_status(conn),
        notices=take_notices(conn) if not conn.closed else (),
    )


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
