"""Sessions through psycopg2, the default driver: application code's connection, as psycopg2 runs it.

psycopg2 opens a transaction implicitly (BEGIN before the first statement) unless the
connection autocommits; COMMIT and ROLLBACK steps go through `commit()` and `rollback()`.
The functions here also serve txnlab's own connections (the admin connection's `final:`
queries, the type catalogue), which are psycopg2 connections whatever the sessions use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extensions

from txnlab.levels import Level
from txnlab.runner.drivers.base import DriverSession
from txnlab.runner.drivers.fresh import FRESH_SESSION_SQL, characteristics_sql
from txnlab.runner.execute import (
    COMMITS, DRIVER_COMMANDS, StepResult, Styles, commit_reply, error_info, guarded, lost_connection,
    python_step_result, scenario_sql_failure,
)
from txnlab.scenario.model import Scenario, SessionSpec
from txnlab.server.connect import connect
from txnlab.timeline import TRANSACTION_STATUS, ErrorInfo

# psycopg2's names for libpq's transaction status (psycopg2.extensions.TRANSACTION_STATUS_*)
STATUS_NAMES = {
    getattr(psycopg2.extensions, name): name
    for name in dir(psycopg2.extensions) if name.startswith("TRANSACTION_STATUS_")
}


def transaction_status(conn: psycopg2.extensions.connection) -> str:
    """The server's view (libpq's PQtransactionStatus), in timeline.TRANSACTION_STATUS's words."""
    if conn.closed:
        return "closed"
    return TRANSACTION_STATUS.get(conn.get_transaction_status(), "unknown")


def styles(conn: psycopg2.extensions.connection) -> Styles:
    """The session's DateStyle and IntervalStyle, from what the server reported (no query)."""
    return conn.get_parameter_status("DateStyle"), conn.get_parameter_status("IntervalStyle")


def take_notices(conn: psycopg2.extensions.connection) -> tuple[str, ...]:
    """The notices the server sent since the last call (libpq's text of each, stripped)."""
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
    `commit()` or `rollback()` sends (it always sends COMMIT or ROLLBACK: psycopg/pqpath.c,
    pq_commit and pq_abort_locked), from libpq's transaction status `before` the call; see
    execute.commit_reply. tests/test_server_answers.py checks it against the server's own
    reply in every transaction status."""
    return commit_reply(command, before == psycopg2.extensions.TRANSACTION_STATUS_INERROR)


def sends_end(conn: psycopg2.extensions.connection) -> bool:
    """Whether psycopg2's `commit()` or `rollback()` would send COMMIT or ROLLBACK now: only
    while a transaction it began is open (psycopg/pqpath.c, pq_commit and pq_abort_locked:
    `conn->status != CONN_STATUS_BEGIN` sends nothing)."""
    return bool(conn.status == psycopg2.extensions.STATUS_BEGIN)


def _end_transaction(conn: psycopg2.extensions.connection, command: str) -> str | None:
    """COMMIT or ROLLBACK through the driver, as application code does; the server's reply,
    or None when psycopg2 sent nothing (see `sends_end`)."""
    sends = sends_end(conn)
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
        driver_status=driver_status(conn),
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
    return python_step_result(
        started, value, error, transaction_status=transaction_status(conn), driver_status=driver_status(conn),
        notices=take_notices(conn) if not conn.closed else (),
    )


def driver_status(conn: psycopg2.extensions.connection) -> str:
    """psycopg2's own word for the transaction status (`TRANSACTION_STATUS_INTRANS`...), or "closed"."""
    if conn.closed:
        return "closed"
    return STATUS_NAMES.get(conn.get_transaction_status(), "unknown")


def end_transaction(conn: psycopg2.extensions.connection) -> None:
    """Roll back whatever transaction the connection has open, whoever began it.

    psycopg2's rollback() ends only a transaction psycopg2 began: on an autocommit connection
    it sends nothing (psycopg/pqpath.c, pq_abort_locked), so an explicit BEGIN a scenario left
    open (failed or not) would outlive the run and the next run's BEGIN would only warn
    ("there is already a transaction in progress") and keep the old level. Then ROLLBACK
    is sent as SQL."""
    conn.rollback()
    if conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        autocommit = conn.autocommit
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ROLLBACK")
        conn.autocommit = autocommit


class Psycopg2Session(DriverSession):
    """A psycopg2 connection, as application code holds it (see DriverSession)."""

    name = "psycopg2"
    version = psycopg2.__version__.split()[0]  # "2.9.10 (dt dec pq3 ext lo64)": the distribution may be psycopg2 or psycopg2-binary

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn = connect(dsn)
        self.pid = self._conn.get_backend_pid()
        self._label = "a session's connection"
        self._schema: str | None = None

    @property
    def connection(self) -> psycopg2.extensions.connection:
        return self._conn

    @property
    def closed(self) -> bool:
        return self._conn.closed == 1

    @property
    def broken(self) -> bool:
        return self._conn.closed == 2

    def reopen(self) -> None:
        self._conn = connect(self._dsn)
        self.pid = self._conn.get_backend_pid()

    def configure(self, scenario: Scenario, spec: SessionSpec, level: Level, schema: str) -> None:
        if self.closed:  # a Python scenario closed it; a broken one is reported
            self.reopen()
        self._label, self._schema = f"session {spec.name}'s connection", schema
        conn = self._conn
        level = spec.level or level
        configure = FRESH_SESSION_SQL + "SET application_name = %s; SET search_path = %s;"
        if spec.autocommit:
            configure += characteristics_sql(level, spec)
        with guarded(conn, self._label):
            end_transaction(conn)  # nothing to do unless a Python scenario left a transaction open
            conn.autocommit = False
            conn.set_session(isolation_level="DEFAULT", readonly="DEFAULT", deferrable="DEFAULT")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(configure, [f"txnlab:{spec.name}", schema])
        for index, statement in enumerate(spec.setup):
            with conn.cursor() as cur:
                try:
                    cur.execute(statement)
                except psycopg2.Error as exc:
                    raise scenario_sql_failure(
                        scenario, f"session.{spec.name}.setup.{index}", f"session {spec.name} setup SQL", exc,
                        statement, connection=conn, label=self._label, schema=schema,
                    ) from None
        take_notices(conn)
        if not spec.autocommit:
            conn.autocommit = False
            conn.set_session(isolation_level=level.sql, readonly=spec.read_only, deferrable=spec.deferrable)

    def execute(self, sql: str) -> StepResult:
        return execute(self._conn, sql)

    def call(self, function: Callable[[Any], Any]) -> StepResult:
        return call(self._conn, function)

    def finish(self, scenario: Scenario, spec: SessionSpec) -> None:
        conn = self._conn
        if self.closed:  # a Python scenario closed it
            return
        end_transaction(conn)
        conn.autocommit = True
        for index, statement in enumerate(spec.teardown):
            with conn.cursor() as cur:
                try:
                    cur.execute(statement)
                except psycopg2.Error as exc:
                    if lost_connection(exc, conn):
                        raise
                    raise scenario_sql_failure(
                        scenario, f"session.{spec.name}.teardown.{index}", f"session {spec.name} teardown SQL",
                        exc, statement, schema=self._schema,
                    ) from None
        with conn.cursor() as cur:  # an idle session must hold no advisory lock, LISTEN or temp table
            cur.execute(FRESH_SESSION_SQL)

    def transaction_status(self) -> str:
        return transaction_status(self._conn)

    def driver_status(self) -> str:
        return driver_status(self._conn)

    def styles(self) -> Styles:
        return styles(self._conn)

    def error_info(self, exc: BaseException) -> ErrorInfo:
        return error_info(exc)

    def lost(self, exc: BaseException) -> bool:
        return lost_connection(exc, self._conn)

    def close(self) -> None:
        self._conn.close()  # on the session's thread: psycopg2 would wait for a running query
