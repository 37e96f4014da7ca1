"""Sessions through psycopg 3: application code's connection, as psycopg 3 runs it.

psycopg 3 also begins implicitly: unless the connection autocommits, it sends BEGIN
(with `isolation_level`, `read_only` and `deferrable` written into it: "BEGIN ISOLATION
LEVEL SERIALIZABLE READ ONLY") before the first statement of a transaction
(psycopg/_connection_base.py, `_start_query`); COMMIT and ROLLBACK steps go through
`commit()` and `rollback()`, which send nothing while libpq reports no transaction open
(`_commit_gen`, `_rollback_gen`), whoever began it. Steps without parameters use the simple
query protocol, so a step may hold several statements, as with psycopg2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import IsolationLevel
from psycopg.pq import TransactionStatus
from psycopg.sql import SQL, Literal

from txnlab.errors import ServerError
from txnlab.levels import Level
from txnlab.redaction import describe_dsn
from txnlab.runner.drivers.base import DriverSession
from txnlab.runner.drivers.fresh import FRESH_SESSION_SQL, characteristics_sql
from txnlab.runner.execute import (
    COMMITS, DRIVER_COMMANDS, LOST_CONNECTION_CLASSES, StepResult, Styles, commit_reply, connection_lost,
    error_info, notice_text, python_step_result, scenario_sql_failure,
)
from txnlab.scenario.model import Scenario, SessionSpec
from txnlab.server.connect import first_line
from txnlab.timeline import TRANSACTION_STATUS, ErrorInfo

class PsycopgSession(DriverSession):
    """A psycopg 3 connection, as application code holds it (see DriverSession)."""

    name = "psycopg"
    version = psycopg.__version__

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._label = "a session's connection"
        self._schema: str | None = None
        self._notices: list[str] = []
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self._dsn)
        except psycopg.OperationalError as exc:
            raise ServerError(f"cannot connect to PostgreSQL ({describe_dsn(self._dsn)}): {first_line(exc)}") from None
        conn.add_notice_handler(
            lambda diag: self._notices.append(
                notice_text(diag.severity, diag.message_primary, diag.message_detail, diag.message_hint)
            )
        )
        self.pid = conn.info.backend_pid
        return conn

    @property
    def connection(self) -> psycopg.Connection[Any]:
        return self._conn

    @property
    def closed(self) -> bool:
        return self._conn.closed and not self._conn.broken

    @property
    def broken(self) -> bool:
        return self._conn.broken

    def reopen(self) -> None:
        self._conn = self._connect()

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """The loss of the connection, while txnlab configures it, as ConnectionLost."""
        try:
            yield
        except psycopg.Error as exc:
            if self.lost(exc):
                raise connection_lost(self._label, error_info(exc)) from None
            raise

    def configure(self, scenario: Scenario, spec: SessionSpec, level: Level, schema: str) -> None:
        if self.closed:  # a Python scenario closed it; a broken one is reported
            self.reopen()
        self._label, self._schema = f"session {spec.name}'s connection", schema
        conn = self._conn
        level = spec.level or level
        configure = SQL(FRESH_SESSION_SQL + "SET application_name = {}; SET search_path = {};").format(
            Literal(f"txnlab:{spec.name}"), Literal(schema)
        ).as_string(conn)
        if spec.autocommit:
            configure += characteristics_sql(level, spec)
        with self._guarded():
            conn.rollback()  # whoever began it: psycopg 3 sends ROLLBACK whenever libpq reports a transaction
            conn.autocommit = True
            conn.isolation_level = conn.read_only = conn.deferrable = None
            conn.execute(configure.encode())
        for index, statement in enumerate(spec.setup):
            try:
                conn.execute(statement.encode())
            except psycopg.Error as exc:
                if self.lost(exc):
                    raise connection_lost(self._label, error_info(exc)) from None
                raise scenario_sql_failure(
                    scenario, f"session.{spec.name}.setup.{index}", f"session {spec.name} setup SQL", exc,
                    statement, schema=schema,
                ) from None
        self._notices.clear()
        if not spec.autocommit:
            conn.autocommit = False
            conn.isolation_level = IsolationLevel[level.sql.replace(" ", "_")]
            conn.read_only, conn.deferrable = spec.read_only, spec.deferrable

    def execute(self, sql: str) -> StepResult:
        """Run `sql` (see DriverSession.execute). Rows are the server's text of each value, read
        from the last result (`pgresult.get_value`, text format) and decoded with the
        connection's encoding; psycopg's own conversion is never asked for."""
        conn = self._conn
        started = time.perf_counter()
        columns = rows = rowcount = error = type_oids = status = origins = None
        sent_nothing = False
        try:
            command = DRIVER_COMMANDS.match(sql)
            if command and not conn.autocommit:
                status = self._end_transaction(command.group(1))
                sent_nothing = status is None
            else:
                with conn.cursor() as cur:
                    cur.execute(sql.encode(conn.info.encoding))  # bytes: sent as written, no placeholders
                    while cur.nextset():  # several statements: the last result, as psycopg2 keeps it
                        pass
                    result = cur.pgresult
                    status = cur.statusmessage
                    rowcount = cur.rowcount if cur.rowcount >= 0 else None
                    if cur.description is not None and result is not None:
                        columns = tuple(d.name for d in cur.description)
                        type_oids = tuple(d.type_code for d in cur.description)
                        origins = tuple((result.ftable(i), result.ftablecol(i)) for i in range(result.nfields))
                        rows = tuple(
                            tuple(self._text(result.get_value(r, c)) for c in range(result.nfields))
                            for r in range(result.ntuples)
                        )
        except Exception as exc:  # noqa: BLE001 - every failure becomes part of the timeline
            error = error_info(exc)
        return StepResult(
            started=started, ended=time.perf_counter(), columns=columns, rows=rows, type_oids=type_oids,
            rowcount=rowcount, error=error, transaction_status=self.transaction_status(), notices=self._take_notices(),
            styles=self.styles() if not conn.closed else None, status=status, driver_sent_nothing=sent_nothing,
            column_origins=origins, driver_status=self.driver_status(),
        )

    def _text(self, value: bytes | None) -> str | None:
        return value.decode(self._conn.info.encoding) if value is not None else None

    def _end_transaction(self, command: str) -> str | None:
        """COMMIT or ROLLBACK through `commit()`/`rollback()`; the server's reply (see
        execute.commit_reply), or None when psycopg 3 sent nothing (no transaction open)."""
        before = self._conn.info.transaction_status
        if command.upper() in COMMITS:
            self._conn.commit()
        else:
            self._conn.rollback()
        if before == TransactionStatus.IDLE:
            return None
        return commit_reply(command, before == TransactionStatus.INERROR)

    def call(self, function: Callable[[Any], Any]) -> StepResult:
        started = time.perf_counter()
        value, error = None, None
        try:
            value = function(self._conn)
        except Exception as exc:  # noqa: BLE001 - a failing call is part of the lesson
            error = error_info(exc)
        return python_step_result(
            started, value, error, transaction_status=self.transaction_status(),
            driver_status=self.driver_status(), notices=self._take_notices(),
        )

    def finish(self, scenario: Scenario, spec: SessionSpec) -> None:
        conn = self._conn
        if self.closed:  # a Python scenario closed it
            return
        conn.rollback()
        conn.autocommit = True
        for index, statement in enumerate(spec.teardown):
            try:
                conn.execute(statement.encode())
            except psycopg.Error as exc:
                if self.lost(exc):
                    raise
                raise scenario_sql_failure(
                    scenario, f"session.{spec.name}.teardown.{index}", f"session {spec.name} teardown SQL",
                    exc, statement, schema=self._schema,
                ) from None
        conn.execute(FRESH_SESSION_SQL.encode())  # an idle session must hold no advisory lock, LISTEN or temp table
        self._notices.clear()

    def _take_notices(self) -> tuple[str, ...]:
        notices = tuple(self._notices)
        self._notices.clear()
        return notices

    def transaction_status(self) -> str:
        if self._conn.closed:
            return "closed"
        return TRANSACTION_STATUS.get(int(self._conn.info.transaction_status), "unknown")

    def driver_status(self) -> str:
        """psycopg 3's `connection.info.transaction_status` (`TransactionStatus.INTRANS`...), or "closed"."""
        if self._conn.closed:
            return "closed"
        return f"TransactionStatus.{self._conn.info.transaction_status.name}"

    def styles(self) -> Styles:
        info = self._conn.info
        return info.parameter_status("DateStyle"), info.parameter_status("IntervalStyle")

    def error_info(self, exc: BaseException) -> ErrorInfo:
        return error_info(exc)

    def lost(self, exc: BaseException) -> bool:
        if self._conn.closed:
            return True
        if not isinstance(exc, psycopg.Error):
            return False
        if exc.sqlstate is None:
            return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
        return exc.sqlstate.startswith(LOST_CONNECTION_CLASSES)

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - closing never fails the run: the server ends what is left
            pass
