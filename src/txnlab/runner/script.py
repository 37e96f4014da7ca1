"""The handle a Python scenario's `play(run)` receives: the same sessions, scheduler and
timeline as a YAML scenario, plus a way to run Python code on a session's thread.

`play` runs contained (see txnlab.runner.contained): in a thread of its own, each of its
requests carried out by the main thread.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import psycopg2.extensions

from txnlab.levels import Level
from txnlab.runner.contained import Relay, play_contained
from txnlab.runner.drivers.psycopg2 import call as call_psycopg2
from txnlab.runner.execute import StepResult
from txnlab.server.connect import connect

if TYPE_CHECKING:
    from txnlab.runner.scheduler import Scheduler
    from txnlab.scenario.model import Scenario


class ScriptedRun:
    """Drive a run from Python; every action becomes a timeline event."""

    def __init__(self, scheduler: Scheduler, scenario: Scenario, dsn: str, level: Level) -> None:
        self._scheduler = scheduler
        self._scenario = scenario
        self.dsn = dsn  # the scratch database, with the run's schema on the search path
        self.level = level  # the run's isolation level
        # The run's driver for the scenario's sessions (psycopg2, psycopg, asyncpg: see
        # Scenario.driver), so that a multi-driver play() picks its dialect by it.
        self.driver = scenario.driver
        self._relay = Relay()

    def step(
        self,
        name: str,
        function: Callable[[psycopg2.extensions.connection], Any] | None = None,
        *,
        on: psycopg2.extensions.connection | None = None,
    ) -> None:
        """Run a step declared under `steps:` in SCENARIO: its SQL, or, given `function`,
        that Python code (the declared `sql` then describes it for the timeline)."""
        step = self._scenario.steps[name]
        if function is None:
            self._relay.perform(self._scheduler.perform, step.session, step.name, step.sql)
        else:
            self.call(step.session, step.name, step.sql, function, on=on)

    def sql(self, session: str, name: str, sql: str) -> None:
        """Run SQL that is not declared in SCENARIO (built in Python, say)."""
        self._relay.perform(self._scheduler.perform, session, name, sql)

    def call(
        self,
        session: str,
        name: str,
        description: str,
        function: Callable[[psycopg2.extensions.connection], Any],
        *,
        on: psycopg2.extensions.connection | None = None,
    ) -> None:
        """Run `function(connection)` on the session's thread; its return value is the step's result.

        The session's thread is the step's thread; the connection it is given is the session's
        own (its driver's connection object), or `on`: another session's (of any driver), or a
        psycopg2 connection the scenario opened (a pool's). Lock waits of `on` count as this
        step's waits, so pass it for another session's connection, or one registered with
        `watch`; the step's captured views (`sent`, the server's, `holds`) are `on`'s too.
        """
        worker = self._scheduler.sessions[session]
        owner = worker if on is None else next(
            (w for w in self._scheduler.sessions.values() if w.session.connection is on), None
        )
        if owner is not None:  # a session's connection, through its own driver (psycopg 3's too)
            job, watched = partial(owner.session.call, function), owner.pid
        else:
            job, watched = partial(call_psycopg2, on, function), (worker.pid if on.closed else on.get_backend_pid())
        self._relay.perform(self._scheduler.call, session, name, description, job, watched)

    def watch(self, label: str, conn: Any) -> None:
        """Make a connection the scenario opened (a pool's, an engine's) part of lock detection:
        a psycopg2, psycopg 3 or asyncpg connection."""
        self._relay.perform(self._scheduler.extra_connections.__setitem__, backend_pid(conn), label)

    def connection(self, session: str) -> Any:
        """The session's connection (its driver's own object: a psycopg2 connection by default),
        to hand to code the scenario runs itself."""
        return self._scheduler.sessions[session].session.connection

    def connect(self) -> psycopg2.extensions.connection:
        """A new connection to the run's database; the scenario must close it."""
        return connect(self.dsn)

    def result(self, name: str) -> StepResult | None:
        return self._scheduler.results.get(name)

    def finish(self) -> None:
        """Wait for every step still in flight."""
        self._relay.perform(self._scheduler.finish)


def backend_pid(conn: Any) -> int:
    """The server process behind a driver's connection: psycopg2's get_backend_pid(),
    psycopg 3's info.backend_pid, asyncpg's get_server_pid()."""
    if hasattr(conn, "get_backend_pid"):
        return int(conn.get_backend_pid())
    if hasattr(conn, "get_server_pid"):
        return int(conn.get_server_pid())
    return int(conn.info.backend_pid)


def play_scenario(scheduler: Scheduler, scenario: Scenario, dsn: str, level: Level, stall_seconds: float) -> None:
    """Run a Python scenario's `play(run)` contained; ScenarioError (exit 2) when it raises
    anything or makes no progress for `stall_seconds` (see txnlab.runner.contained)."""
    assert scenario.play is not None
    run = ScriptedRun(scheduler, scenario, dsn, level)
    play_contained(
        partial(scenario.play, run), run._relay, scenario.source, scenario.lines.get("play"), stall_seconds,
        abandon_run=partial(scheduler.stop, abandon=True),
    )
