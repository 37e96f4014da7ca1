"""Sessions through asyncpg, each driven on an event loop of its own.

asyncpg never begins a transaction implicitly: without `conn.transaction()` every statement
commits on its own. A session that is not `autocommit` therefore runs as asyncpg application
code is written: before its first statement it starts `conn.transaction(isolation=...)`, and
its COMMIT or ROLLBACK steps go through that transaction's `commit()` / `rollback()`.

Values are the server's own text. asyncpg decodes most types from the binary format into
Python objects, so while one of our steps is prepared every type it may return gets an
identity codec in the text format (the server then sends text, handed on as is); the codecs
are removed again at once, so a Python scenario's code on the same connection still gets
asyncpg's Python values. See `ServerTextCodecs` for what that touches inside asyncpg.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version as installed_version
from typing import Any, ClassVar, TypeVar

import asyncpg
import psycopg2.extensions
from asyncpg.protocol.protocol import BUILTIN_TYPE_OID_MAP
from pglast.parser import split

from txnlab.levels import Level
from txnlab.runner.drivers.base import DriverSession
from txnlab.runner.execute import (
    COMMITS, DRIVER_COMMANDS, LOST_CONNECTION_CLASSES, StepResult, Styles, commit_reply, connection_lost,
    notice_text, position_line, python_step_result, sql_failure,
)
from txnlab.runner.drivers.fresh import FRESH_SESSION_SQL, characteristics_sql
from txnlab.scenario.model import Scenario, SessionSpec
from txnlab.server.connect import CONNECT_DEADLINE_SECONDS
from txnlab.timeline import ErrorInfo
from txnlab.values import quoted

T = TypeVar("T")

# asyncpg's names for the isolation levels (asyncpg/transaction.py, ISOLATION_LEVELS).
ISOLATION = {
    Level.READ_UNCOMMITTED: "read_uncommitted",
    Level.READ_COMMITTED: "read_committed",
    Level.REPEATABLE_READ: "repeatable_read",
    Level.SERIALIZABLE: "serializable",
}
# Command tags that end with a row count (libpq's PQcmdTuples, which psycopg2's rowcount reads
# for a command that returns no rows).
COUNTED = re.compile(r"^(INSERT \d+|UPDATE|DELETE|MERGE|SELECT|MOVE|FETCH|COPY) (\d+)$")
# The libpq keywords a session's DSN may carry and how asyncpg.connect() takes each.
ASYNCPG_KEYWORDS = {"host": "host", "port": "port", "user": "user", "password": "password", "dbname": "database"}
IGNORED_KEYWORDS = {"gssencmode"}  # asyncpg never negotiates GSSAPI encryption


class ServerText(asyncpg.Record):
    """The record class of txnlab's own statements: its values are the server's text."""


def connect_arguments(dsn: str) -> dict[str, Any]:
    """asyncpg.connect()'s keyword arguments for a libpq connection string.

    asyncpg takes a URL or keywords, not a libpq string. host (a directory for a unix
    socket), port, user, password and dbname are kept as given; application_name and the
    `-c name=value` settings of `options` become server settings; sslmode=disable turns TLS
    off, other modes go to asyncpg as they are; connect_timeout (s) bounds the attempt, else
    CONNECT_DEADLINE_SECONDS. Raises ValueError for a keyword asyncpg has no counterpart for."""
    params = psycopg2.extensions.parse_dsn(dsn)
    arguments: dict[str, Any] = {"timeout": float(params.pop("connect_timeout", CONNECT_DEADLINE_SECONDS))}
    settings: dict[str, str] = {}
    for key, value in params.items():
        if key in ASYNCPG_KEYWORDS:
            arguments[ASYNCPG_KEYWORDS[key]] = int(value) if key == "port" else value
        elif key == "application_name":
            settings[key] = value
        elif key == "options":
            settings.update(_options(value))
        elif key == "sslmode":
            arguments["ssl"] = False if value == "disable" else value
        elif key not in IGNORED_KEYWORDS:
            raise ValueError(f"asyncpg has no counterpart for the connection parameter {key!r}")
    if settings:
        arguments["server_settings"] = settings
    return arguments


def _options(options: str) -> dict[str, str]:
    """The settings of libpq's `options`: `-c name=value`, `-cname=value` or `--name=value`,
    separated by blanks. Raises ValueError for any other server option."""
    settings = {}
    words = iter(options.split())
    for word in words:
        if word == "-c":
            word = "-c" + next(words, "")
        if not word.startswith(("-c", "--")) or "=" not in word:
            raise ValueError(f"asyncpg cannot pass the server option {word!r}")
        name, _, value = word[2:].partition("=")
        settings[name.replace("-", "_")] = value
    return settings


def _returned(rows: tuple[Any, ...] | None) -> int | None:
    """The rowcount of a statement whose command tag carries no count (SHOW, EXPLAIN): the
    rows it returned, as libpq's PQntuples gives psycopg2's rowcount; None if it returns none."""
    return len(rows) if rows is not None else None


def _identity(value: str) -> str:
    return value


def _records_as_dicts(value: Any) -> Any:
    """asyncpg's Records (what fetch and fetchrow return) as dicts of column name and value,
    inside lists and tuples too, so that `python_value` shows them as data."""
    if isinstance(value, asyncpg.Record):
        return dict(value.items())
    if isinstance(value, (list, tuple)):
        return [_records_as_dicts(item) for item in value]
    return value


class ServerTextCodecs:
    """Identity text codecs for every type a statement may return, installed while it is prepared.

    asyncpg picks each result column's format (text or binary) and decoder when a statement
    is prepared (PreparedStatementState._init_codecs), from the codec registered for the
    column's type OID, a custom one first. The public `set_type_codec` refuses arrays,
    ranges and text codecs on composites, so the codecs go in through the connection's codec
    settings (`conn._protocol.get_settings().add_python_codec`, what `set_type_codec` calls
    after its checks): a custom codec works by OID, whatever the type's kind.

    The OIDs are those asyncpg has a codec for: its built-in ones (BUILTIN_TYPE_OID_MAP) and
    the types it introspected on this connection (`types`, recorded by
    `TextConnection._introspect_types`). A type it meets for the first time it introspects
    as it always does (the query shows on the wire, as it would in any asyncpg application),
    and gets its text codec then. A type the application gave a codec of its own keeps it:
    its values are not the server's text, and `customized` says which they are.

    Removing the codecs also drops asyncpg's cache of derived codecs (arrays, composites,
    ranges, domains: DataCodecConfig.clear_type_cache), so it is rebuilt from `types` with
    no query: the application's next statement finds what it found before."""

    def __init__(self, conn: TextConnection) -> None:
        self.conn = conn
        self.types: dict[int, Any] = {}  # OID -> asyncpg's introspection record, in arrival order
        self.installed: set[int] = set()
        self.customized: set[int] = set()

    def _settings(self) -> Any:
        return self.conn._protocol.get_settings()

    def install(self, oid: int, name: str, schema: str) -> None:
        """A text identity codec for `oid`, unless the application set a codec of its own."""
        settings = self._settings()
        if oid in self.installed or oid in self.customized:
            return
        if settings.get_data_codec(oid) is not settings.get_data_codec(oid, ignore_custom_codec=True):
            self.customized.add(oid)
            return
        settings.add_python_codec(oid, name, schema, [], "scalar", _identity, _identity, "text")
        self.installed.add(oid)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Every known type decoded as the server's text, for the statements prepared inside."""
        self.customized = set()
        for oid, name in BUILTIN_TYPE_OID_MAP.items():
            if self._settings().get_data_codec(oid) is not None:
                self.install(oid, name, "pg_catalog")
        for oid, info in self.types.items():
            self.install(oid, info["name"], info["ns"])
        self.conn.server_text = self
        try:
            yield
        finally:
            self.conn.server_text = None
            settings = self._settings()
            for oid in self.installed:
                settings.remove_python_codec(oid, "", "")
            self.installed.clear()
            if self.types:
                settings.register_data_types(list(self.types.values()))

    def forget(self) -> None:
        """Forget the introspected types (asyncpg's own cache of them was dropped)."""
        self.types.clear()

    def learn(self, types: Any) -> None:
        """asyncpg introspected `types` (records with oid, ns, name): keep them, and decode
        them as text too while active."""
        for info in types:
            self.types[info["oid"]] = info
            if self.conn.server_text is self:
                self.install(info["oid"], info["name"], info["ns"])


# ReadyForQuery's transaction status byte -> timeline.TRANSACTION_STATUS's words
READY_STATUS = {b"I": "idle", b"T": "in transaction", b"E": "in failed transaction"}


class BackendMessages(asyncio.Protocol):
    """Stands between a connection's transport and asyncpg's protocol, and keeps what asyncpg
    keeps to itself: the status of the last ReadyForQuery ('I', 'T' or 'E') and the column
    origins of the first RowDescription since `column_origins` was last set to None (a step's
    own, not that of the type introspection asyncpg may run after it, while preparing).

    asyncpg holds the status in a C attribute (`xact_status`; only `is_in_transaction()`,
    true in a failed transaction too, is public), and no reckoning from the exceptions a step
    raised can follow what a Python step's own code did. Its `Attribute`s name a result
    column and its type, never the table column it came from, which the history needs to
    match returned rows to row versions. Every message is framed here as it arrives (a type
    byte, then a length that counts itself, protocol.html "Message Formats"), the bytes go on
    to asyncpg unchanged, and nothing is sent."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self.protocol = protocol
        self.status = b"I"  # installed right after the connection's first ReadyForQuery
        # (table OID, attnum) of each result column; 0, 0 for one no table column gives
        self.column_origins: tuple[tuple[int, int], ...] | None = None
        self._header = b""  # an incomplete message header (type byte and length)
        self._skip = 0  # bytes of the current message still to come
        self._kind = b""  # the current message's type byte
        self._body = bytearray()  # the current RowDescription's bytes so far

    def data_received(self, data: bytes) -> None:
        self._frame(memoryview(data))
        self.protocol.data_received(data)

    def _frame(self, data: memoryview) -> None:
        while data:
            if self._skip:
                taken = data[: self._skip]
                if self._kind == b"Z":
                    self.status = bytes(taken[-1:])
                elif self._kind == b"T":
                    self._body += taken
                self._skip -= len(taken)
                data = data[len(taken):]
                if not self._skip and self._kind == b"T" and self.column_origins is None:
                    self.column_origins = _origins(bytes(self._body))
                continue
            needed = 5 - len(self._header)
            self._header += bytes(data[:needed])
            data = data[needed:]
            if len(self._header) == 5:
                self._kind = self._header[:1]
                self._skip = int.from_bytes(self._header[1:], "big") - 4
                self._body = bytearray()
                self._header = b""

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self.protocol.eof_received()

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()


def _origins(body: bytes) -> tuple[tuple[int, int], ...]:
    """(table OID, column attnum) of each field of a RowDescription's body: Int16 count, then
    per field a NUL-ended name, Int32 table OID, Int16 attnum and 12 bytes of type (protocol.html
    "Message Formats")."""
    origins = []
    at = 2
    for _ in range(int.from_bytes(body[:2], "big")):
        at = body.index(b"\0", at) + 1
        origins.append((int.from_bytes(body[at:at + 4], "big"), int.from_bytes(body[at + 4:at + 6], "big")))
        at += 18
    return tuple(origins)


class TextConnection(asyncpg.Connection):
    """asyncpg's connection, telling `ServerTextCodecs` which types asyncpg introspects, and
    the session whether the application closed it (else a closed connection was lost)."""

    server_text: ServerTextCodecs | None = None
    codecs: ServerTextCodecs
    closed_by_application = False

    async def close(self, *, timeout: float | None = None) -> None:
        self.closed_by_application = True
        await super().close(timeout=timeout)

    def terminate(self) -> None:
        self.closed_by_application = True
        super().terminate()

    async def _introspect_types(self, typeoids: Any, timeout: Any) -> Any:
        types, statement = await super()._introspect_types(typeoids, timeout)
        self.codecs.learn(types)
        return types, statement


class AsyncpgSession(DriverSession):
    """One asyncpg connection on an event loop of its own, used only from the session's thread.

    The server's transaction status is not exposed by asyncpg (its protocol keeps the last
    ReadyForQuery's status to itself; `is_in_transaction()` is true in a failed transaction
    too), so `transaction_status` reads it from the messages themselves (`BackendMessages`)."""

    name: ClassVar[str] = "asyncpg"
    version: ClassVar[str] = installed_version("asyncpg")

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.loop = asyncio.new_event_loop()
        self.conn: TextConnection
        self.transaction: Any = None  # the asyncpg Transaction a non-autocommit session started
        self.autocommit = True
        self.isolation: str | None = None
        self.read_only = False
        self.deferrable = False
        self.lost_connection = False
        self.schema: str | None = None  # the run's schema, while the session serves a run
        self.notices: list[str] = []
        try:
            self._open()
        except BaseException:
            self.loop.close()
            raise

    def _run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def _open(self) -> None:
        arguments = connect_arguments(self.dsn)
        self.conn = self._run(asyncpg.connect(**arguments, connection_class=TextConnection))
        self.conn.codecs = ServerTextCodecs(self.conn)
        self.conn.add_log_listener(self._notice)
        self.pid = self.conn.get_server_pid()
        self.backend = BackendMessages(self.conn._transport.get_protocol())
        self.conn._transport.set_protocol(self.backend)
        self.transaction, self.lost_connection = None, False

    def _notice(self, _conn: Any, message: asyncpg.PostgresLogMessage) -> None:
        self.notices.append(notice_text(message.severity, message.message, message.detail, message.hint))

    @property
    def connection(self) -> asyncpg.Connection:
        return self.conn

    @property
    def closed(self) -> bool:
        return self.conn.closed_by_application

    @property
    def broken(self) -> bool:
        return self.lost_connection or (self.conn.is_closed() and not self.conn.closed_by_application)

    def reopen(self) -> None:
        self._open()

    # -- running a run -------------------------------------------------------------------

    def configure(self, scenario: Scenario, spec: SessionSpec, level: Level, schema: str) -> None:
        if self.closed:
            self.reopen()
        level = spec.level or level
        label = f"session {spec.name}'s connection"
        sql = FRESH_SESSION_SQL + f"SET application_name = {quoted('txnlab:' + spec.name)}; "
        sql += f"SET search_path = {quoted(schema)};"
        if spec.autocommit:
            sql += characteristics_sql(level, spec)
        try:
            self._run(self._reset(sql))
        except Exception as exc:
            raise self._failure(exc, label) from None
        self.schema = schema
        self._run_own_sql(scenario, spec, "setup")
        self.autocommit = spec.autocommit
        self.isolation = ISOLATION[level]
        self.read_only = bool(spec.read_only)
        self.deferrable = bool(spec.deferrable)
        self.notices.clear()

    async def _reset(self, sql: str) -> None:
        """asyncpg's own reset (Connection.reset: ends the transaction, whoever began it, and
        forgets listeners), asyncpg's caches dropped (DEALLOCATE ALL removes its prepared
        statements) and the types txnlab saw it introspect forgotten with them (a new
        connection introspects them again), then the run's fresh session."""
        await self.conn.reset()
        self.conn.add_log_listener(self._notice)
        await self.conn.reload_schema_state()
        self.conn.codecs.forget()
        await self.conn.execute(sql)
        self.transaction = None

    def _run_own_sql(self, scenario: Scenario, spec: SessionSpec, part: str) -> None:
        """The session's setup or teardown SQL, statement by statement, as written. A lost
        connection raises ConnectionLost in setup, asyncpg's own error in teardown (see
        DriverSession.finish); a failing statement what `sql_failure` makes of it."""
        for index, statement in enumerate(getattr(spec, part)):
            try:
                self._run(self.conn.execute(statement))
            except Exception as exc:
                if self.lost(exc) or not isinstance(exc, asyncpg.PostgresError):
                    if part == "teardown":
                        raise
                    raise self._failure(exc, f"session {spec.name}'s connection") from None
                line = position_line(statement, getattr(exc, "position", None), exc.message)
                where = scenario.where(f"session.{spec.name}.{part}.{index}", line)
                info = self.error_info(exc)
                raise sql_failure(where, f"session {spec.name} {part} SQL", info, self.schema) from None

    def _failure(self, exc: BaseException, label: str) -> BaseException:
        """ConnectionLost for the loss of the connection `label` names, else `exc` itself."""
        return connection_lost(label, self.error_info(exc)) if self.lost(exc) else exc

    def finish(self, scenario: Scenario, spec: SessionSpec) -> None:
        if self.closed:
            return
        self._run(self._end_transaction())
        self._run_own_sql(scenario, spec, "teardown")
        self._run(self.conn.execute(FRESH_SESSION_SQL))
        self.notices.clear()

    async def _end_transaction(self) -> None:
        """Roll back the transaction this session started, then any other (an explicit BEGIN)."""
        if self.transaction is not None:
            transaction, self.transaction = self.transaction, None
            await transaction.rollback()
        if self.conn.is_in_transaction():
            await self.conn.execute("ROLLBACK")

    # -- steps ---------------------------------------------------------------------------

    def execute(self, sql: str) -> StepResult:
        """Run one step's SQL. One statement is prepared and fetched (its rows, columns, type
        OIDs and command status); several go through `Connection.execute`, asyncpg's simple
        query path, which returns the last one's status and no rows."""
        started = time.perf_counter()
        outcome: dict[str, Any] = {}
        error = None
        try:
            self._run(self._execute(sql, outcome))
        except Exception as exc:  # noqa: BLE001 - every failure becomes part of the timeline
            error = self.error_info(exc)
            self._after_error(exc)
        status = outcome.get("status")
        counted = COUNTED.match(status or "")
        return StepResult(
            started=started,
            ended=time.perf_counter(),
            columns=outcome.get("columns"),
            rows=outcome.get("rows"),
            type_oids=outcome.get("type_oids"),
            column_types=outcome.get("column_types"),
            column_origins=outcome.get("column_origins"),
            rowcount=int(counted.group(2)) if counted else _returned(outcome.get("rows")),
            error=error,
            transaction_status=self.transaction_status(),
            driver_status=self.driver_status(),
            notices=self._take_notices(),
            styles=self.styles() if not self.conn.is_closed() else None,
            status=status,
            driver_sent_nothing=outcome.get("sent_nothing", False),
        )

    async def _execute(self, sql: str, outcome: dict[str, Any]) -> None:
        command = DRIVER_COMMANDS.match(sql)
        if command and not self.autocommit:
            outcome["status"] = await self._end_transaction_step(command.group(1))
            outcome["sent_nothing"] = outcome["status"] is None
            return
        if not self.autocommit and self.transaction is None:
            transaction = self.conn.transaction(
                isolation=self.isolation, readonly=self.read_only, deferrable=self.deferrable
            )
            await transaction.start()
            self.transaction = transaction
        if len(split(sql, with_parser=False)) > 1:
            outcome["status"] = await self.conn.execute(sql)
            return
        self.backend.column_origins = None
        with self.conn.codecs.active():
            statement = await self.conn.prepare(sql, record_class=ServerText)
            attributes = statement.get_attributes()
            customized = self.conn.codecs.customized
        rows = await statement.fetch()
        outcome["status"] = statement.get_statusmsg()
        if attributes:
            outcome["columns"] = tuple(a.name for a in attributes)
            outcome["type_oids"] = tuple(a.type.oid for a in attributes)
            outcome["rows"] = tuple(tuple(row) for row in rows)
            outcome["column_origins"] = self.backend.column_origins
            if any(a.type.oid in customized for a in attributes):
                outcome["column_types"] = tuple(
                    f"{a.type.name} (the application's codec)" if a.type.oid in customized else a.type.name
                    for a in attributes
                )

    async def _end_transaction_step(self, command: str) -> str | None:
        """COMMIT or ROLLBACK through the session's asyncpg Transaction; the server's reply
        (a COMMIT in a failed transaction is answered ROLLBACK), or None when no transaction
        is open: asyncpg then has nothing to end and sends nothing."""
        if self.transaction is None:
            return None
        transaction, self.transaction = self.transaction, None
        reply = commit_reply(command, self.backend.status == b"E")
        if command.upper() in COMMITS:
            await transaction.commit()
        else:
            await transaction.rollback()
        return reply

    def call(self, function: Callable[[Any], Any]) -> StepResult:
        """Run `function(connection)`; a coroutine it returns (or a coroutine function) is
        awaited on the session's event loop."""
        started = time.perf_counter()
        value, error = None, None
        try:
            returned = function(self.conn)
            value = self._run(returned) if inspect.isawaitable(returned) else returned
        except Exception as exc:  # noqa: BLE001 - a failing call is part of the lesson
            error = self.error_info(exc)
            self._after_error(exc)
        return python_step_result(
            started, _records_as_dicts(value), error, transaction_status=self.transaction_status(),
            driver_status=self.driver_status(), notices=self._take_notices(),
        )

    def _after_error(self, exc: BaseException) -> None:
        if self.lost(exc):
            self.lost_connection = True

    def _take_notices(self) -> tuple[str, ...]:
        self._run(asyncio.sleep(0))  # log listeners are called soon after the message, not at once
        notices, self.notices = tuple(self.notices), []
        return notices

    # -- what the timeline reads ---------------------------------------------------------

    def transaction_status(self) -> str:
        if self.conn.is_closed():
            return "closed"
        return READY_STATUS.get(self.backend.status, "unknown")

    def driver_status(self) -> str:
        return f"is_in_transaction() = {self.conn.is_in_transaction()}"

    def styles(self) -> Styles:
        settings = self.conn.get_settings()
        return getattr(settings, "DateStyle", None), getattr(settings, "IntervalStyle", None)

    def error_info(self, exc: BaseException) -> ErrorInfo:
        """The server's fields when it sent the error; asyncpg raises some PostgresError
        classes itself (ConnectionDoesNotExistError, with the class's SQLSTATE but no
        message from the server): those are told as driver errors, without a SQLSTATE."""
        exception = f"{type(exc).__module__}.{type(exc).__qualname__}"
        if isinstance(exc, asyncpg.PostgresError) and exc.message is not None:  # the server's fields
            return ErrorInfo(
                exception=exception, message=exc.message, sqlstate=exc.sqlstate,
                detail=exc.detail, hint=exc.hint, context=getattr(exc, "context", None),
            )
        text = str(exc).strip()
        return ErrorInfo(exception=exception, message=text.splitlines()[0] if text else type(exc).__name__)

    def lost(self, exc: BaseException) -> bool:
        if isinstance(exc, asyncpg.PostgresError) and exc.sqlstate:
            if exc.sqlstate.startswith(LOST_CONNECTION_CLASSES):
                return True
        if isinstance(exc, (asyncpg.ConnectionDoesNotExistError, ConnectionError)):
            return True
        return isinstance(exc, asyncpg.InterfaceError) and self.conn.is_closed()

    def close(self) -> None:
        try:
            if not self.conn.is_closed():
                self._run(self.conn.close(timeout=1.0))
        except Exception:  # noqa: BLE001 - closing never raises; a dead connection is closed
            self.conn.terminate()
        finally:
            if not self.loop.is_running():  # a step still running on another thread keeps it
                self.loop.close()
