"""Sessions: real psycopg2 connections, each driven by a thread of its own.

A step is handed to the session's thread and the scheduler goes on; that is what
lets one session sit blocked on a lock while another runs the step that frees it.
Connections are reused from run to run (opening one costs about 3 ms) and reset
with the equivalent of DISCARD ALL, so every run starts from a session as fresh as a new one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extensions

from txnlab.levels import Level
from txnlab.runner.execute import guarded, lost_connection, scenario_sql_failure, take_notices
from txnlab.scenario.model import Scenario, SessionSpec
from txnlab.server.connect import connect

Completion = tuple["SessionWorker", Any]

# DISCARD ALL, spelled out so that it can share one round trip with the run's settings
# (DISCARD ALL itself refuses to run in the implicit transaction of a multi-statement query).
FRESH_SESSION_SQL = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES; "
)


class SessionWorker:
    """One connection and the thread that sends its statements."""

    def __init__(self, dsn: str, completions: queue.SimpleQueue[Completion]) -> None:
        self.dsn = dsn
        self.conn = connect(dsn)
        self.pid: int = self.conn.get_backend_pid()
        self.name = "?"
        self.schema: str | None = None  # the run's schema, while the worker serves a run
        self.busy = False
        self.retired = False  # closed by the pool: its thread closes the connection when free
        self._jobs: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self._completions = completions
        self._thread = threading.Thread(target=self._serve, name="txnlab-session", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any]) -> None:
        """Run `job` on the session's thread; its result arrives on the completions queue."""
        if self.busy:
            raise RuntimeError(f"session {self.name} is still busy")
        self.busy = True
        self._jobs.put(job)

    @property
    def label(self) -> str:
        """How an error message names this connection."""
        return f"session {self.name}'s connection"

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                result = job()
            except BaseException as exc:  # noqa: BLE001 - handed to the scheduler, not lost
                result = exc
            self.busy = False
            self._completions.put((self, result))
        self.conn.close()  # here, never from another thread: psycopg2 would wait for the running query

    def prepare(self, scenario: Scenario, spec: SessionSpec, level: Level, schema: str) -> None:
        """Reset the connection and configure it for one run; called while the session is idle.

        Raises ConnectionLost if the connection died, else what `scenario_sql_failure` makes
        of a failing statement of the session's setup SQL."""
        if self.conn.closed == 1:  # a Python scenario closed it; a broken one (2) is reported
            self.conn = connect(self.dsn)
            self.pid = self.conn.get_backend_pid()
        self.name = spec.name
        self.schema = schema
        conn = self.conn
        level = spec.level or level
        configure = FRESH_SESSION_SQL + "SET application_name = %s; SET search_path = %s;"
        if spec.autocommit:
            configure += _characteristics_sql(level, spec)
        with guarded(conn, self.label):
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
                        statement, connection=conn, label=self.label, schema=schema,
                    ) from None
        take_notices(conn)
        if not spec.autocommit:
            conn.autocommit = False
            conn.set_session(isolation_level=level.sql, readonly=spec.read_only, deferrable=spec.deferrable)

    def finish(self, scenario: Scenario, spec: SessionSpec) -> None:
        """End the run for this session: roll back what is open, then run its teardown.

        Raises psycopg2.Error when the server ended the session (the caller reports it),
        else what `scenario_sql_failure` makes of a failing teardown statement."""
        conn = self.conn
        if conn.closed == 1:  # a Python scenario closed it
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
                        exc, statement, schema=self.schema,
                    ) from None
        with conn.cursor() as cur:  # an idle worker must hold no advisory lock, LISTEN or temp table
            cur.execute(FRESH_SESSION_SQL)

    def close(self) -> None:
        """Retire the worker. Its thread closes the connection once its current job (if any)
        returns; a job blocked for good ends when the scratch database is dropped WITH (FORCE)."""
        if self.retired:
            return
        self.retired = True
        self._jobs.put(None)
        if not self.busy:
            self._thread.join(timeout=1.0)


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


def _characteristics_sql(level: Level, spec: SessionSpec) -> str:
    """Session defaults for an autocommit session, so its explicit BEGIN gets the run's level."""
    parts = [f"ISOLATION LEVEL {level.sql}"]
    if spec.read_only is not None:
        parts.append("READ ONLY" if spec.read_only else "READ WRITE")
    if spec.deferrable is not None:
        parts.append("DEFERRABLE" if spec.deferrable else "NOT DEFERRABLE")
    return "SET SESSION CHARACTERISTICS AS TRANSACTION " + ", ".join(parts)


class SessionPool:
    """Workers kept across runs; `acquire(n)` hands out n of them, opening more when needed."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self.workers: list[SessionWorker] = []  # idle between runs; handed out by `acquire`

    def acquire(self, count: int) -> list[SessionWorker]:
        while len(self.workers) < count:
            self.workers.append(SessionWorker(self.dsn, self.completions))
        return self.workers[:count]

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def discard(self, worker: SessionWorker) -> None:
        """Drop a worker whose thread or connection can no longer be trusted."""
        if worker in self.workers:
            self.workers.remove(worker)
        worker.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.workers.clear()
