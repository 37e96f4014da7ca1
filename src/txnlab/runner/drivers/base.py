"""The interface every kind of session implements, whatever Python driver it speaks through.

A session is one connection to the run's database through one driver (psycopg2, psycopg 3,
asyncpg), driven by a thread of its own (runner.sessions.SessionWorker). The scheduler, the
lock monitor and the timeline know sessions only through this interface, so a new driver is
a new subclass, registered in runner.drivers.DRIVERS, and nothing else changes.

Every method runs on the session's own thread (asyncpg's event loop lives there too), except
`close`, which the worker calls from that thread once its last job is done.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from txnlab.levels import Level
from txnlab.runner.execute import StepResult, Styles
from txnlab.scenario.model import Scenario, SessionSpec
from txnlab.timeline import ErrorInfo


class DriverSession(ABC):
    """One connection through one driver, as application code using that driver holds it.

    `name` is the driver's name as a scenario writes it (`driver: psycopg`); `version` the
    installed driver's version (importlib.metadata), for the timeline's header and for the
    claims `txnlab myths` checks. `pid` is the backend's process ID (it changes only when
    `reopen` opens a new connection)."""

    name: ClassVar[str]
    version: ClassVar[str]
    pid: int

    @abstractmethod
    def __init__(self, dsn: str) -> None:
        """Connect to `dsn` (a libpq connection string); raises the driver's error on failure."""

    @property
    @abstractmethod
    def connection(self) -> Any:
        """The driver's own connection object, handed to a Python scenario's step functions."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """Closed by the application (a Python scenario's code): `reopen` makes a new one."""

    @property
    @abstractmethod
    def broken(self) -> bool:
        """Lost: the server ended the session or the network failed."""

    @abstractmethod
    def reopen(self) -> None:
        """Replace a connection the application closed with a new one (new `pid`)."""

    @abstractmethod
    def configure(self, scenario: Scenario, spec: SessionSpec, level: Level, schema: str) -> None:
        """Reset the session to a fresh one (the equivalent of DISCARD ALL, whatever the last
        run left open), set application_name to `txnlab:<spec.name>` and search_path to
        `schema`, run the session's setup SQL, and leave it ready for its steps: in autocommit
        if `spec.autocommit`, else in the driver's own way of running transactions at
        `spec.level or level` (with spec.read_only and spec.deferrable).

        Raises ConnectionLost if the connection died, else what
        runner.execute.scenario_sql_failure makes of a failing setup statement."""

    @abstractmethod
    def execute(self, sql: str) -> StepResult:
        """Run one step's SQL as the driver's application code would; never raises for a
        database error (it is in the result). A COMMIT or ROLLBACK step in a session that is
        not autocommit goes through the driver's own commit()/rollback()."""

    @abstractmethod
    def call(self, function: Callable[[Any], Any]) -> StepResult:
        """Run a Python scenario's `function(connection)`; its return value is the step's
        result, an exception its error (asyncpg: `function` may be a coroutine function,
        awaited on the session's event loop)."""

    @abstractmethod
    def finish(self, scenario: Scenario, spec: SessionSpec) -> None:
        """End the run for this session: roll back whatever is open (whoever began it), run
        its teardown SQL, and leave it holding nothing (no advisory lock, LISTEN, temp table).

        Raises the driver's error when the server ended the session, else what
        scenario_sql_failure makes of a failing teardown statement."""

    @abstractmethod
    def transaction_status(self) -> str:
        """The server's view of the transaction, as its last ReadyForQuery reported it, in
        timeline.TRANSACTION_STATUS's words ("idle", "in transaction", ...; "closed")."""

    @abstractmethod
    def driver_status(self) -> str:
        """The driver's own answer to "am I in a transaction?", in its own terms:
        `TRANSACTION_STATUS_INTRANS` (psycopg2), `TransactionStatus.INTRANS` (psycopg 3),
        `is_in_transaction() = True` (asyncpg)."""

    @abstractmethod
    def styles(self) -> Styles:
        """The session's DateStyle and IntervalStyle, as the server last reported them."""

    @abstractmethod
    def error_info(self, exc: BaseException) -> ErrorInfo:
        """The timeline's description of an exception this driver raised (SQLSTATE, message,
        DETAIL, HINT, CONTEXT when a server error is behind it)."""

    @abstractmethod
    def lost(self, exc: BaseException) -> bool:
        """Did `exc` come with the loss of this connection (SQLSTATE class 08 or 57P, or a
        driver error that left the connection unusable)?"""

    @abstractmethod
    def close(self) -> None:
        """Close the connection (and the event loop, for asyncpg); never raises."""
