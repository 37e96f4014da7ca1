"""The probe runner: each probe runs real driver code through the wire tap, in a scratch
database, and its cell is built from what the tap recorded and what the server says.

Facts come from an observer connection (psycopg2, autocommit, straight to the server, not
through the tap): the state in pg_stat_activity of every other client session in the
scratch database, and how many rows of the probe table are committed. Between probes the
observer ends any session a probe left (pg_terminate_backend) and recreates the table, so
each probe starts alike and nothing outlives it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import psycopg2.extensions

from txnlab.drivers_table.model import NOT_APPLICABLE, Behaviour, Cell, Driver, DriversTable
from txnlab.errors import ServerError
from txnlab.runner.wiretap import WireTap
from txnlab.server.connect import connect, first_line
from txnlab.server.scratch import ScratchDatabase

# A probe must never hang the table: every statement a probe's session runs is cancelled
# after this long (the startup packet's `options`, so nothing extra appears on the wire).
PROBE_STATEMENT_TIMEOUT_MS = 5000

# psycopg_pool logs to "psycopg.pool"; asyncpg's pool reports through the event loop's
# exception handler, which logs to "asyncio"; SQLAlchemy's pool logs "Exception closing
# connection" with a traceback to "sqlalchemy.pool.impl.*" when Ctrl-C ends a probe's session.
QUIET_LOGGERS = ("psycopg.pool", "asyncio", "sqlalchemy.pool")

# How long a closed or terminated connection's backend may take to exit.
SESSION_END_WAIT_S = 3.0

# The probes' sessions: every client session in the scratch database but the observer's.
OTHER_CLIENTS = ("FROM pg_stat_activity WHERE datname = current_database() "
                 "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")

# What a probe reads to learn the level its transaction really runs at.
TRANSACTION_ISOLATION = "SELECT current_setting('transaction_isolation')"

PROBE_TABLE = "CREATE TABLE t (id int PRIMARY KEY)"


class Bench:
    """What a probe works with: `dsn` (a libpq string through the tap), `params` (the same as
    keyword arguments, for asyncpg), and the facts it states once its code has run."""

    def __init__(self, tap: WireTap, tap_dsn: str, observer: psycopg2.extensions.connection) -> None:
        self.tap = tap
        self.dsn = tap_dsn
        self.params: dict[str, str] = psycopg2.extensions.parse_dsn(tap_dsn)
        self._observer = observer

    def mark(self) -> None:
        """Forget what was sent so far (connection set-up, an engine's first-connect queries)."""
        self.tap.take_except(set())

    def sent(self) -> tuple[str, ...]:
        """Every Query/Parse message any probe connection sent since the last mark, in order per
        connection (the observer does not go through the tap)."""
        return self.tap.take_except(set())

    def states(self) -> str:
        """The pg_stat_activity state of each other client session in the scratch database,
        e.g. "idle in transaction", or "no session" when every connection is closed."""
        with self._observer.cursor() as cur:
            cur.execute(f"SELECT state {OTHER_CLIENTS} ORDER BY backend_start")
            states = [state for (state,) in cur.fetchall()]
        return ", ".join(states) if states else "no session"

    def session_of(self, pid: int, closed: bool) -> str:
        """The session of backend `pid`: its pg_stat_activity state ("idle"), or "ended". When
        the driver says it `closed` the connection, wait up to SESSION_END_WAIT_S for the
        backend to go (it exits a moment after the driver's Terminate message)."""
        deadline = time.monotonic() + (SESSION_END_WAIT_S if closed else 0)
        with self._observer.cursor() as cur:
            while True:
                cur.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid])
                row = cur.fetchone()
                if row is None:
                    return "ended"
                if time.monotonic() >= deadline:
                    return str(row[0])
                time.sleep(0.01)

    def committed(self) -> int:
        """How many rows of the probe table `t` are committed (seen from the observer)."""
        with self._observer.cursor() as cur:
            cur.execute("SELECT count(*) FROM t")
            return int(cur.fetchone()[0])

    def insert_committed(self, key: int) -> None:
        """A committed row in `t`, inserted by the observer (not through the tap)."""
        with self._observer.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (%s)", [key])

    def reset(self) -> None:
        """End every session a probe left in the scratch database, wait until their backends
        are gone (pg_terminate_backend only signals; a backend exits a moment later, and until
        then the next probe's `states()` would list it), and recreate `t` empty.

        Raises ServerError if a backend outlives SESSION_END_WAIT_S."""
        deadline = time.monotonic() + SESSION_END_WAIT_S
        with self._observer.cursor() as cur:
            cur.execute(f"SELECT pg_terminate_backend(pid) {OTHER_CLIENTS}")
            while True:
                cur.execute(f"SELECT count(*) {OTHER_CLIENTS}")
                if cur.fetchone()[0] == 0:
                    break
                if time.monotonic() >= deadline:
                    raise ServerError(f"a probe's session outlived pg_terminate_backend by {SESSION_END_WAIT_S:g} s")
                time.sleep(0.01)
            cur.execute("DROP TABLE IF EXISTS t")
            cur.execute(PROBE_TABLE)


Probe = Callable[[Bench], Cell]


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE a driver's exception carries (psycopg2 `pgcode`, psycopg 3 and asyncpg
    `sqlstate`), looking through SQLAlchemy's wrapper (`orig`) and the exception's cause."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "pgcode", None) or getattr(seen, "sqlstate", None)
        if isinstance(code, str):
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def outcome(exc: BaseException) -> str:
    """An error as a cell states it: its SQLSTATE if it has one, else its class and first line."""
    code = sqlstate(exc)
    if code is not None:
        return code
    return f"{type(exc).__name__}: {first_line(exc)}"


def refused(exc: BaseException) -> str:
    """A driver's refusal (not the server's) as a cell states it: "refused (ProgrammingError)";
    its message is long, and the class is what code catches."""
    return f"refused ({type(exc).__name__})"


def two_threads(bench: Bench, statement: Callable[[], object]) -> Cell:
    """Run `statement` (a 0.2 s pg_sleep) from two threads at once; say whether both ran and,
    when both did, whether one after the other (0.35 s or more in all) or overlapping. When
    one failed, the order is not stated: a statement that failed at once took no 0.2 s."""
    errors: list[str] = []

    def work() -> None:
        try:
            statement()
        except Exception as exc:  # the cell reports what the driver raised
            errors.append(outcome(exc))

    threads = [threading.Thread(target=work) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if errors:
        return Cell(bench.sent(), "; ".join(errors))
    return Cell(bench.sent(), f"both ran, {'one after the other' if elapsed >= 0.35 else 'overlapping'}")


def drivers_table(dsn: str | None) -> DriversTable:
    """The whole table on the chosen server (--dsn, else $TXNLAB_DSN, $DATABASE_URL or the
    embedded server): every behaviour, every driver, every probe of drivers_table.catalogue."""
    from txnlab.drivers_table import catalogue  # it imports every driver; bench itself needs none
    from txnlab.server.selection import choose_server, resolve_dsn

    return run_probes(resolve_dsn(choose_server(dsn)), catalogue.drivers(), catalogue.BEHAVIOURS, catalogue.probes())


def run_probes(server_dsn: str, drivers: tuple[Driver, ...], behaviours: tuple[Behaviour, ...],
               probes: dict[tuple[str, str], Probe]) -> DriversTable:
    """Run every probe in a scratch database through a wire tap; the table of their cells.

    A probe that raises becomes its cell's `error` ("error: ..."), never a failure of the
    table. Raises ServerError (exit 3) when the server cannot be reached or refuses a
    scratch database. The tap, the sessions and the scratch database are gone on return,
    however it returns (Ctrl-C included).
    """
    cells: dict[tuple[str, str], Cell] = {}
    with _bench(server_dsn) as (bench, version):
        for behaviour in behaviours:
            for driver in drivers:
                probe = probes.get((behaviour.key, driver.key))
                cells[(behaviour.key, driver.key)] = NOT_APPLICABLE if probe is None else _run(probe, bench)
    return DriversTable(server_version=version, drivers=drivers, behaviours=behaviours, cells=cells)


def _run(probe: Probe, bench: Bench) -> Cell:
    """One probe's cell, with what its clean-up sent after it took `sent` as `teardown`;
    afterwards the sessions it left are ended and `t` is empty again."""
    bench.mark()
    try:
        with _quiet_drivers():
            cell = probe(bench)
        return replace(cell, teardown=bench.sent())
    except Exception as exc:  # a driver raising the unexpected: the cell says so, the table goes on
        return Cell(sent=bench.sent(), error=f"{type(exc).__name__}: {first_line(exc)}")
    finally:
        bench.reset()


@contextmanager
def _quiet_drivers() -> Iterator[None]:
    """Keep the drivers' own complaints about what a probe does on purpose off the user's
    terminal (psycopg_pool's "rolling back returned connection", asyncpg's "Resetting
    connection with an active transaction" through asyncio's exception handler): the cell
    states what happened."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    quiet = logging.NullHandler()
    propagates = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(quiet)
        logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, propagate in zip(loggers, propagates):
            logger.removeHandler(quiet)
            logger.propagate = propagate


@contextmanager
def _bench(server_dsn: str) -> Iterator[tuple[Bench, str]]:
    """A scratch database, a tap in front of the server and an observer in the database."""
    with ScratchDatabase(server_dsn) as scratch_dsn:
        tap = WireTap(scratch_dsn)
        try:
            observer = connect(scratch_dsn, autocommit=True)
            try:
                tap_dsn = psycopg2.extensions.make_dsn(
                    tap.dsn(scratch_dsn), options=f"-c statement_timeout={PROBE_STATEMENT_TIMEOUT_MS}"
                )
                bench = Bench(tap, tap_dsn, observer)
                bench.reset()
                yield bench, _server_version(observer)
            finally:
                observer.close()
        finally:
            tap.close()


def _server_version(conn: psycopg2.extensions.connection) -> str:
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        return re.sub(r"\s.*", "", cur.fetchone()[0])


def connect_kwargs(bench: Bench) -> dict[str, Any]:
    """The tap's address as asyncpg.connect's keyword arguments (asyncpg reads no libpq string)."""
    p = bench.params
    return {
        "host": p["host"], "port": int(p["port"]), "user": p.get("user"), "password": p.get("password"),
        "database": p["dbname"], "ssl": False,
        "server_settings": {"statement_timeout": str(PROBE_STATEMENT_TIMEOUT_MS)},
    }
