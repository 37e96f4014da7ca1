"""The lab: one scratch database, reusable sessions and a lock monitor, running scenarios in it.

Each run starts from a clean slate: a schema created for it and filled by the
scenario's setup SQL (see `schemas`). Sessions, the monitor and the database are
reused from run to run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from textwrap import shorten

import psycopg2

from txnlab.errors import ScenarioError, ServerError, TxnlabError, UsageError
from txnlab.history.capture import Installed
from txnlab.history.model import HistoryCapture
from txnlab.levels import Level
from txnlab.runner.column_types import TypeCatalog
from txnlab.runner.isolationtester import run_spec
from txnlab.runner.drivers.psycopg2 import execute
from txnlab.runner.execute import connection_lost, error_info, guarded, scenario_sql_failure, sql_failure
from txnlab.runner.monitor import LABEL as MONITOR
from txnlab.runner.monitor import LockMonitor
from txnlab.runner.names import unqualified
from txnlab.runner.observe import Observer
from txnlab.runner.scheduler import Scheduler, Watcher
from txnlab.runner.schemas import LABEL as BUILDER
from txnlab.runner.schemas import SchemaSupply
from txnlab.runner.script import play_scenario
from txnlab.runner.sessions import SessionPool, SessionWorker
from txnlab.runner.wiretap import WireTap, remove_abandoned
from txnlab.scenario.model import Scenario
from txnlab.server.connect import connect, first_line, with_params
from txnlab.server.footprint import Footprint, ServerChange, maintenance_database
from txnlab.server.scratch import ScratchDatabase
from txnlab.signals import uninterrupted
from txnlab.timeline import Event, Outcome, Timeline

DEFAULT_STEP_TIMEOUT = 5.0
DEFAULT_POLL_INTERVAL = 0.0002
ADMIN = "the admin connection"


@dataclass
class DrivenRun:
    """A run in progress (see Lab.driving): its scheduler, its schema, the DSN for connections
    of the caller's own (the run's schema on the search path), and, once the block has
    ended, its timeline."""

    scheduler: Scheduler
    schema: str
    dsn: str
    timeline: Timeline | None = None


class Lab:
    """Runs scenarios inside an existing (scratch) database; see `open_lab` for the usual way in."""

    def __init__(
        self,
        database_dsn: str,
        *,
        step_timeout: float = DEFAULT_STEP_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        history: bool = True,
    ) -> None:
        self.dsn = database_dsn
        self.step_timeout = step_timeout
        self.poll_interval = poll_interval
        self.admin = connect(self.dsn, autocommit=True, application_name="txnlab admin")
        self.monitor = LockMonitor(self.dsn)
        self.pool = SessionPool(self.dsn)
        self.schemas = SchemaSupply(self.dsn, history=history)  # history: record each run's (history/capture.py)
        self.server_version = self._server_version()
        self._tap: WireTap | None = None
        self._tapped_pool: SessionPool | None = None
        self._running: str | None = None  # the scenario of the run in progress (see `driving`)

    def run(
        self,
        scenario: Scenario,
        level: Level,
        permutation: tuple[str, ...] | None = None,
        *,
        then: Scenario | None = None,
        watcher: Watcher | None = None,
    ) -> Timeline:
        """Run one scenario at one isolation level and return its timeline.

        `then` names the scenario that runs next, so its schema is built during this run.
        A `watcher` follows the run step by step (workshop mode); its events also carry
        the server's view of each session (state, locks, SIRead locks).
        """
        permutation = permutation or scenario.default_permutation
        with self.driving(scenario, level, permutation, then=then, watcher=watcher) as run:
            self._perform(scenario, run, permutation, level)
        assert run.timeline is not None
        return run.timeline

    @contextmanager
    def driving(
        self,
        scenario: Scenario,
        level: Level,
        permutation: tuple[str, ...] = (),
        *,
        then: Scenario | None = None,
        watcher: Watcher | None = None,
    ) -> Iterator[DrivenRun]:
        """One run whose steps the caller sends through `DrivenRun.scheduler` inside the block
        (`run` sends a permutation's; an interleaving, a test's own calls). When the block ends,
        the steps still in flight are waited for, the sessions reset, and `DrivenRun.timeline`
        is set. An exception in the block ends the run as `run`'s would (steps in flight
        cancelled, every session's connection retired: the next run opens new ones) and is
        raised again; `permutation` labels the timeline. Raises UsageError when called inside
        another run's block: the two would share sessions."""
        if self._running is not None:  # its sessions are in use: a second run would reset them under it
            raise UsageError(f"the lab is in the middle of a run of {self._running}; a run cannot start inside another")
        self._running = scenario.name
        try:
            yield from self._driving(scenario, level, permutation, then, watcher)
        finally:
            self._running = None

    def _driving(
        self, scenario: Scenario, level: Level, permutation: tuple[str, ...], then: Scenario | None,
        watcher: Watcher | None,
    ) -> Iterator[DrivenRun]:
        started = time.perf_counter()
        schema, installed = self.schemas.claim(scenario)
        if then is not None:
            self.schemas.prepare(then)
        with guarded(self.admin, ADMIN), self.admin.cursor() as cur:
            cur.execute(f"SET search_path = {schema}")
        pool = self._pool_for(scenario)
        workers = pool.acquire([spec.driver for spec in scenario.sessions])
        sessions: dict[str, SessionWorker] = {}
        for spec, worker in zip(scenario.sessions, workers):
            worker.prepare(scenario, spec, level, schema)
            sessions[spec.name] = worker
        history_from = self._history_mark(scenario, installed)
        if scenario.capture and self._tap is not None:
            self._tap.take_except(set())  # what txnlab sent to reset the sessions is not the lesson
        expectation = scenario.expectations.get(level)
        scheduler = Scheduler(
            sessions=sessions,
            monitor=self.monitor,
            pool=pool,
            step_timeout=self.step_timeout,
            poll_interval=self.poll_interval,
            types=TypeCatalog(self.admin, ADMIN),
            observer=self._observer(scenario, schema, watched=watcher is not None),
            watcher=watcher,
            lab_pids=self._own_pids(),
            expected_errors=expectation.may_fail if expectation else frozenset(),
            locks_after=expectation.reads_locks_after if expectation else frozenset(),
            schema=schema,
        )
        run = DrivenRun(scheduler, schema, self._run_dsn(scenario, schema))
        try:
            yield run
            scheduler.finish()
        except BaseException as exc:
            lost = self._lost(exc) if isinstance(exc, psycopg2.Error) else exc
            self._abandon(scheduler, sessions, pool)
            if lost is not exc:
                raise lost from None
            raise
        scheduler.stop()
        history = self._history(installed, sessions, scheduler.events, history_from)
        self._end_sessions(scenario, sessions, pool, scheduler)
        run.timeline = Timeline(
            scenario=scenario.name,
            level=level,
            sessions=tuple(sessions),
            drivers={name: (w.session.name, w.session.version) for name, w in sessions.items()},
            permutation=permutation,
            server_version=self.server_version,
            events=scheduler.events,
            invariants=self._invariants(scenario, schema),
            final=self._final(scenario, schema, scheduler.origin, scheduler.types),
            ended_early=scheduler.ended_early,
            history=history,
        )
        self._teardown(scenario, schema)
        run.timeline.duration = time.perf_counter() - started

    def run_permutations(
        self, scenario: Scenario, level: Level, permutations: Sequence[Sequence[str]] | None = None,
    ) -> list[Timeline]:
        """One Timeline per permutation, in order; `permutations=None`: the scenario's own.

        A `.spec` scenario runs as PostgreSQL's isolationtester runs it (runner/isolationtester.py:
        libpq sessions in this lab's database, its markers, setup and teardown per permutation);
        a YAML or Python scenario runs each permutation with `run`."""
        if scenario.isolationtester:
            return run_spec(scenario, self.dsn, level=level, server_version=self.server_version,
                            step_timeout=self.step_timeout, monitor=self.monitor, permutations=permutations)
        return [self.run(scenario, level, tuple(p)) for p in (permutations or scenario.permutations)]

    def _perform(self, scenario: Scenario, run: DrivenRun, permutation: tuple[str, ...], level: Level) -> None:
        """Send the permutation's steps, or let a Python scenario's play() drive the sessions."""
        if scenario.play is None:
            for name in permutation:
                step = scenario.steps[name]
                run.scheduler.perform(step.session, step.name, step.sql)
            return
        try:
            play_scenario(run.scheduler, scenario, run.dsn, level, stall_seconds=self.step_timeout)
        except ScenarioError as exc:  # what play() raised may quote the server, run schema and all
            raise ScenarioError(exc.source, unqualified(exc.problem, run.schema), exc.line) from None

    def _run_dsn(self, scenario: Scenario, schema: str) -> str:
        """The run's database with its schema on the search path (through the wire tap for a
        capture scenario): for connections a Python scenario or a test opens itself."""
        base = self._tap.dsn(self.dsn) if scenario.capture and self._tap else self.dsn
        return with_params(base, options=f"-c search_path={schema}")

    def _history_mark(self, scenario: Scenario, installed: Installed | None) -> int:
        """Where the run's writes begin in the history log: after what the sessions' own setup
        SQL wrote (read only when a session has setup SQL; 0 otherwise)."""
        if installed is None or self.schemas.history is None or not any(s.setup for s in scenario.sessions):
            return 0
        with guarded(self.admin, ADMIN):
            return self.schemas.history.mark(self.admin)

    def _history(
        self, installed: Installed | None, sessions: dict[str, SessionWorker], events: list[Event], after: int
    ) -> HistoryCapture | None:
        """The run's history, read on the admin connection once its steps are done and before the
        sessions' teardown (whose writes are not the run's). None when it is not recorded."""
        if installed is None or self.schemas.history is None:
            return None
        pids = tuple((name, worker.pid) for name, worker in sessions.items())
        with guarded(self.admin, ADMIN):
            return self.schemas.history.collect(self.admin, installed, pids, events, after)

    def _abandon(self, scheduler: Scheduler, sessions: dict[str, SessionWorker], pool: SessionPool) -> None:
        """A run that cannot finish (Ctrl-C, a lost connection, a bug in play()): stop what is in
        flight and retire every session, never touching a connection whose thread may be blocked."""
        try:
            scheduler.stop()
        except TxnlabError:
            pass  # the monitor is gone too: dropping the scratch database ends what is left
        finally:
            for worker in sessions.values():
                pool.discard(worker)

    def _lost(self, exc: psycopg2.Error) -> BaseException:
        """ConnectionLost naming which of txnlab's connections died, or `exc` if none did."""
        own = [(self.admin, ADMIN), (self.monitor.conn, MONITOR), (self.schemas.conn, BUILDER)]
        pools = [self.pool, *([self._tapped_pool] if self._tapped_pool else [])]
        broken = [label for conn, label in own if conn.closed == 2]
        broken += [w.label for pool in pools for w in pool.workers if w.session.broken]
        return connection_lost(broken[0], error_info(exc)) if broken else exc

    def close(self) -> None:
        self.schemas.close()
        self.pool.close()
        if self._tapped_pool is not None:
            self._tapped_pool.close()
        if self._tap is not None:
            self._tap.close()
        self.monitor.close()
        self.admin.close()

    def _own_pids(self) -> tuple[int, ...]:
        """txnlab's connections: admin, monitor, schema builder, and every pooled worker."""
        pools = [self.pool, *([self._tapped_pool] if self._tapped_pool else [])]
        workers = tuple(pid for pool in pools for pid in pool.pids())
        return (self.admin.get_backend_pid(), self.monitor.conn.get_backend_pid(), self.schemas.pid, *workers)

    def _observer(self, scenario: Scenario, schema: str, watched: bool) -> Observer | None:
        tap = self._tap if scenario.capture else None
        return Observer(tap, self.monitor, schema) if tap is not None or watched else None

    def _pool_for(self, scenario: Scenario) -> SessionPool:
        """Sessions that talk to the server directly, or through the wire tap for capture scenarios."""
        if not scenario.capture:
            return self.pool
        if self._tap is None or self._tapped_pool is None:
            info = self.admin.info  # the effective host and port, also when they come from PGHOST/PGPORT
            self._tap = WireTap(with_params(self.dsn, host=info.host, port=info.port))
            self._tapped_pool = SessionPool(self._tap.dsn(self.dsn))
        return self._tapped_pool

    def _server_version(self) -> str:
        with guarded(self.admin, ADMIN), self.admin.cursor() as cur:
            cur.execute("SHOW server_version")
            return str(cur.fetchone()[0]).split()[0]

    @staticmethod
    def _end_sessions(
        scenario: Scenario, sessions: dict[str, SessionWorker], pool: SessionPool, scheduler: Scheduler
    ) -> None:
        """Roll back and tear down each session. One the server ended after its last step
        (idle_in_transaction_session_timeout, a terminate) is reported in the timeline and replaced."""
        for name, worker in sessions.items():
            if worker.retired:  # discarded after a step timeout: its thread may still be blocked in it
                continue
            if worker.session.broken:  # the run's steps already met the lost connection
                pool.discard(worker)
                continue
            try:
                worker.finish(scenario, scenario.session(name))
            except TxnlabError:
                pool.discard(worker)
                raise
            except Exception as exc:  # noqa: BLE001 - the driver's error: the session ended, or a bug
                lost = worker.session.lost(exc)  # before discarding, which closes the connection
                pool.discard(worker)
                if not lost:
                    raise ServerError(f"could not reset {worker.label}: {first_line(exc)}") from None
                scheduler.session_ended(name, worker.session.error_info(exc))

    def _teardown(self, scenario: Scenario, schema: str) -> None:
        with self.admin.cursor() as cur:
            for index, statement in enumerate(scenario.teardown):
                try:
                    cur.execute(statement)
                except psycopg2.Error as exc:
                    raise scenario_sql_failure(
                        scenario, f"teardown.{index}", "teardown SQL", exc, statement, connection=self.admin, label=ADMIN,
                        schema=schema,
                    ) from None

    def _final(self, scenario: Scenario, schema: str, origin: float, types: TypeCatalog) -> list[Event]:
        """Run the scenario's `final:` SQL on the committed state (after the invariants, so it
        cannot change what they saw), through `execute` like a step, so that its values are
        fetched and shown exactly as the steps' are. `origin`: the run's clock (perf_counter);
        `types`: the run's type names, shared with its steps."""
        events = []
        for index, sql in enumerate(scenario.final):
            result = execute(self.admin, sql)
            if result.error is not None:
                if self.admin.closed:
                    raise connection_lost(ADMIN, result.error)
                raise sql_failure(scenario.where(f"final.{index}"), "final SQL", result.error, schema)
            events.append(Event(
                seq=index + 1, session="", step=f"final.{index + 1}", sql=sql, outcome=Outcome.OK,
                started=result.started - origin, ended=result.ended - origin, columns=result.columns,
                column_types=types.names(result.type_oids) if result.type_oids is not None else None,
                rows=result.rows, rowcount=result.rowcount, transaction_status=result.transaction_status,
                notices=tuple(unqualified(n, schema) for n in result.notices), status=result.status,
            ))
        return events

    def _invariants(self, scenario: Scenario, schema: str) -> dict[str, bool]:
        """Evaluate each invariant on the final, committed state."""
        results = {}
        with self.admin.cursor() as cur:
            for name, sql in scenario.invariants.items():
                key = f"invariant.{name}"
                try:
                    cur.execute(sql)
                    rows = cur.fetchall() if cur.description else []
                except psycopg2.Error as exc:
                    raise scenario_sql_failure(
                        scenario, key, f"invariant {name}", exc, sql, connection=self.admin, label=ADMIN,
                        schema=schema,
                    ) from None
                if len(rows) != 1 or len(rows[0]) != 1 or not isinstance(rows[0][0], bool):
                    got = shorten(repr(rows), 80)
                    raise ScenarioError(scenario.where(key), f"invariant {name} must return one boolean, got {got}")
                results[name] = rows[0][0]
        return results


@contextmanager
def open_lab(
    server_dsn: str, *, server_changes: list[ServerChange] | None = None, undo_server_changes: bool = False,
    **options: float | bool,
) -> Iterator[Lab]:
    """A Lab in a fresh scratch database on the given server, dropped however the block ends.

    What changed on the server outside the scratch database during the run is appended
    to `server_changes` (see `footprint`); with `undo_server_changes` (txnlab's embedded
    server), what appeared is removed.
    """
    remove_abandoned()  # wire tap directories of killed runs: every run clears them, as it does scratch databases
    scratch = ScratchDatabase(server_dsn)
    with scratch as dsn:
        footprint = Footprint(dsn, maintenance_database(server_dsn), undo=undo_server_changes)
        try:
            lab = Lab(dsn, **options)
            try:
                yield lab
            finally:
                lab.close()
        finally:
            # A signal must not stop it halfway, or skip it, and leave a role or database behind.
            recorded = server_changes if server_changes is not None else []
            uninterrupted(lambda: recorded.extend(footprint.settle()))
