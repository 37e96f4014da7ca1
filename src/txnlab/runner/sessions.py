"""Sessions: real connections through any driver, each driven by a thread of its own.

A step is handed to the session's thread and the scheduler goes on; that is what
lets one session sit blocked on a lock while another runs the step that frees it.
Connections are reused from run to run (opening one costs about 3 ms) and reset
with the equivalent of DISCARD ALL, so every run starts from a session as fresh as a new one.
Every call on a session (runner.drivers.base.DriverSession) runs on its thread, where
an asyncpg session's event loop lives too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from txnlab.levels import Level
from txnlab.runner.drivers import driver
from txnlab.runner.drivers.base import DriverSession
from txnlab.scenario.model import Scenario, SessionSpec

Completion = tuple["SessionWorker", Any]
Job = tuple[Callable[[], Any], "queue.SimpleQueue[Any] | None"]  # the job, and where its result goes (None: completions)
REPLY_POLL_SECONDS = 0.1  # how often a caller waiting for a session's reply lets signals in


class SessionWorker:
    """One session (a DriverSession) and the thread that sends its statements."""

    def __init__(self, dsn: str, completions: queue.SimpleQueue[Completion], driver_name: str = "psycopg2") -> None:
        self.dsn = dsn
        self.driver = driver_name
        session_class = driver(driver_name)  # an unknown or missing driver: UsageError, before any thread
        self.name = "?"
        self.schema: str | None = None  # the run's schema, while the worker serves a run
        self.busy = False
        self.retired = False  # closed by the pool: its thread closes the connection when free
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._completions = completions
        self._thread = threading.Thread(target=self._serve, name="txnlab-session", daemon=True)
        self._thread.start()
        try:
            self.session: DriverSession = self.run(lambda: session_class(dsn))
        except BaseException:
            self._jobs.put(None)
            raise

    @property
    def pid(self) -> int:
        """The session's backend process ID."""
        return self.session.pid

    def submit(self, job: Callable[[], Any]) -> None:
        """Run `job` on the session's thread; its result arrives on the completions queue."""
        if self.busy:
            raise RuntimeError(f"session {self.name} is still busy")
        self.busy = True
        self._jobs.put((job, None))

    def run(self, job: Callable[[], Any]) -> Any:
        """Run `job` on the session's thread and return its result (or raise what it raised);
        only while the session is idle (before or after a run's steps)."""
        reply: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._jobs.put((job, reply))
        while True:
            try:
                outcome, value = reply.get(timeout=REPLY_POLL_SECONDS)
            except queue.Empty:
                continue
            if outcome:
                return value
            raise value

    @property
    def label(self) -> str:
        """How an error message names this connection."""
        return f"session {self.name}'s connection"

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, reply = item
            try:
                result, ok = job(), True
            except BaseException as exc:  # noqa: BLE001 - handed to the scheduler or the caller, not lost
                result, ok = exc, False
            if reply is not None:
                reply.put((ok, result))
                continue
            self.busy = False
            self._completions.put((self, result))
        session: DriverSession | None = getattr(self, "session", None)  # None: the connection never opened
        if session is not None:
            session.close()  # here, never from another thread: psycopg2 would wait for the running query

    def prepare(self, scenario: Scenario, spec: SessionSpec, level: Level, schema: str) -> None:
        """Reset the session and configure it for one run (DriverSession.configure)."""
        self.name = spec.name
        self.schema = schema
        self.run(lambda: self.session.configure(scenario, spec, level, schema))

    def finish(self, scenario: Scenario, spec: SessionSpec) -> None:
        """End the run for this session (DriverSession.finish)."""
        self.run(lambda: self.session.finish(scenario, spec))

    def close(self) -> None:
        """Retire the worker. Its thread closes the connection once its current job (if any)
        returns; a job blocked for good ends when the scratch database is dropped WITH (FORCE)."""
        if self.retired:
            return
        self.retired = True
        self._jobs.put(None)
        if not self.busy:
            self._thread.join(timeout=1.0)


class SessionPool:
    """Workers kept across runs, of every driver; `acquire(drivers)` hands out one per name."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self.workers: list[SessionWorker] = []  # idle between runs; handed out by `acquire`

    def acquire(self, drivers: Sequence[str]) -> list[SessionWorker]:
        """One worker per driver name (a scenario's sessions, in order), reusing idle ones
        of that driver and opening the rest."""
        chosen: list[SessionWorker] = []
        for name in drivers:
            idle = next((w for w in self.workers if w.driver == name and w not in chosen), None)
            if idle is None:
                idle = SessionWorker(self.dsn, self.completions, name)
                self.workers.append(idle)
            chosen.append(idle)
        return chosen

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
