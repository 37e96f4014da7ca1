"""The scheduler: runs steps in order and turns what the sessions do into timeline events.

After each step it waits until every session with a step in flight is either done or
reported blocked by the server; only then does the next step go out. That rule, the
same as PostgreSQL's isolationtester, fixes the order in which steps are sent without
sleeping; what the server itself decides (which of two queued sessions gets a row first)
may still differ from run to run (`txnlab run --repeat N` counts the timelines).
Completions seen together are recorded in causal order: a session released by another
session's commit or error is recorded after it, and never with an earlier time.

A wait can change while it lasts (the lock's holder commits and the step now waits for
the next session in the queue, or for a session that took the lock first; a deadlock
forms): whenever the run settles, the wait of every step still blocked is read again,
and each change is recorded as a BLOCKED event of its own (`Event.wait_changed`).
"""

from __future__ import annotations

import dataclasses
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import psycopg2

from txnlab import signals
from txnlab.runner.column_types import TypeCatalog
from txnlab.runner.execute import ConnectionLost, StepResult, Styles, connection_lost, error_info
from txnlab.runner.observe import Observer, held_locks
from txnlab.runner.monitor import LockMonitor
from txnlab.runner.names import readable_error, unqualified
from txnlab.runner.sessions import Completion, SessionPool, SessionWorker
from txnlab.scenario.model import PLACEHOLDER
from txnlab.timeline import ErrorInfo, Event, LockWait, Outcome
from txnlab.values import PYTHON, UNKNOWN_TYPE, python_value, sql_literal

CANCEL_GRACE_SECONDS = 2.0
WAIT_CHECK_SECONDS = 0.02  # while waiting for a session, how often the other waits are read again

Wait = tuple[tuple[str, ...], LockWait, float]  # blockers' names, the lock, when it was read (perf_counter)


@dataclass
class InFlight:
    """A step sent to a session whose result has not been recorded yet."""

    worker: SessionWorker
    step: str
    sql: str
    sent_at: float
    order: int
    blocked_by: tuple[str, ...] = ()
    lock: LockWait | None = None
    blocked_recorded: bool = False
    detected_at: float = 0.0  # perf_counter when the monitor saw the wait
    watched_pid: int = 0  # the backend whose waits count: the session's own, or a connection it borrowed
    python: bool = False  # a Python step: its text is code (see Event.python)

    def __post_init__(self) -> None:
        self.watched_pid = self.watched_pid or self.worker.pid


@dataclass
class Arrival:
    flight: InFlight
    result: StepResult
    timed_out: bool = False


class Watcher(Protocol):
    """Someone following the run step by step (workshop mode): told before each step is sent
    and given the events each step produced. The runner formats nothing itself."""

    def before_step(self, session: str, step: str, sql: str, *, python: bool = False) -> None:
        """Told before a step goes out: its SQL, or a Python step's code (`python`)."""

    def after_step(self, events: Sequence[Event]) -> None: ...


@dataclass
class Scheduler:
    """Drives one run's sessions; `events` is the timeline being written."""

    sessions: dict[str, SessionWorker]
    monitor: LockMonitor
    pool: SessionPool
    step_timeout: float
    poll_interval: float
    types: TypeCatalog  # names the types of the columns steps return
    observer: Observer | None = None  # set for scenarios that capture the wire and the server's view
    lab_pids: tuple[int, ...] = ()  # txnlab's own connections (idle workers too), never in a server view
    origin: float = field(default_factory=time.perf_counter)
    events: list[Event] = field(default_factory=list)
    results: dict[str, StepResult] = field(default_factory=dict)
    ended_early: str | None = None
    extra_connections: dict[int, str] = field(default_factory=dict)  # pid -> label (pools, engines)
    watcher: Watcher | None = None
    expected_errors: frozenset[str] = frozenset()  # steps expected to fail at this level (any error)
    locks_after: frozenset[str] = frozenset()  # steps after which the session's locks are read (`holds:`)
    schema: str = ""  # the run's schema: taken out of every message (runner.names); the locks read are on its objects
    _in_flight: dict[str, InFlight] = field(default_factory=dict)
    _styles: dict[str, Styles] = field(default_factory=dict)  # each session's, after its last SQL step
    _dispatched: int = 0

    @property
    def completions(self) -> queue.SimpleQueue[Completion]:
        return self.pool.completions

    @property
    def run_pids(self) -> list[int]:
        return [*(w.pid for w in self.sessions.values()), *self.extra_connections]

    # -- the public moves -------------------------------------------------------------

    def perform(self, session: str, step: str, sql: str) -> None:
        """Send one SQL step: wait for the session if it is still busy, then let things settle."""
        with self._watched(session, step, sql):
            if not self._session_ready(session):
                return
            try:
                sql = self._substitute(sql, session)
            except LookupError as exc:
                now = self._now()
                reason = ErrorInfo(exception="txnlab.MissingValue", message=str(exc))
                self._append(session, step, sql, Outcome.SKIPPED, now, now, error=reason)
                return
            worker = self.sessions[session]
            self._dispatch(worker, step, sql, lambda: worker.session.execute(sql))

    def call(self, session: str, step: str, description: str, job: Callable[[], Any], watched_pid: int = 0) -> None:
        """Run a Python callable on a session's thread as one step (for Python scenarios).

        `watched_pid` is the backend whose lock waits count as this step's, when the
        callable uses a connection other than the session's own.
        """
        with self._watched(session, step, description, python=True):
            if self._session_ready(session):
                self._dispatch(self.sessions[session], step, description, job, watched_pid, python=True)

    def waiting_for(self, session: str) -> tuple[str, ...]:
        """The sessions `session`'s step in flight waits for, as last read from the server
        (empty when it has no step in flight, or one that is not waiting)."""
        flight = self._in_flight.get(session)
        return flight.blocked_by if flight is not None and flight.blocked_recorded else ()

    def wait_for_session(self, session: str) -> None:
        """Wait until `session` has no step in flight (the step timeout still applies)."""
        self._session_ready(session)

    def _session_ready(self, session: str) -> bool:
        """Wait for the session's previous step if needed; False once the run has ended."""
        if not self.ended_early and session in self._in_flight:
            self._wait_for(session)
        return not self.ended_early

    def _dispatch(
        self, worker: SessionWorker, step: str, text: str, job: Callable[[], Any], watched_pid: int = 0,
        *, python: bool = False,
    ) -> None:
        self._dispatched += 1
        flight = InFlight(worker, step, text, time.perf_counter(), self._dispatched, watched_pid=watched_pid,
                          python=python)
        self._in_flight[worker.name] = flight
        worker.submit(job)
        self._settle([], trigger=flight)

    def finish(self) -> None:
        """Wait for every step still in flight, as at the end of a permutation."""
        mark = len(self.events)
        while self._in_flight and not self.ended_early:
            self._wait_for(min(self._in_flight.values(), key=lambda f: f.order).worker.name)
        if self.watcher is not None and len(self.events) > mark:
            self.watcher.after_step(self.events[mark:])

    @contextmanager
    def _watched(self, session: str, step: str, text: str, *, python: bool = False) -> Iterator[None]:
        """Tell the watcher (if any) about the step before it goes out and what it produced."""
        if self.watcher is None or self.ended_early:
            yield
            return
        try:
            text = self._substitute(text, session)  # show the SQL as it will be sent, when it can be
        except LookupError:
            pass
        self.watcher.before_step(session, step, text, python=python)
        mark = len(self.events)
        yield
        self.watcher.after_step(self.events[mark:])

    def stop(self, *, abandon: bool | None = None) -> None:
        """End whatever the run still has going on the server.

        Normally (an error in a Python scenario, a lost connection) the steps in flight
        are cancelled and given CANCEL_GRACE_SECONDS to end before their backends are
        terminated. A run that is abandoned (`abandon`; by default, when a signal has
        arrived: see txnlab.signals) waits for nothing: every backend of the run, idle or
        not, is terminated at once and its worker dropped, so that no connection is left
        that a stuck thread could still be using (a Python scenario's, say) and closing
        one never waits for a statement; the scratch database's DROP ... WITH (FORCE)
        ends whatever else is connected to it.
        """
        if abandon is None:
            abandon = signals.received() is not None
        if not abandon:
            try:
                for flight in list(self._in_flight.values()):
                    self.monitor.cancel(flight.watched_pid)
                deadline = time.perf_counter() + CANCEL_GRACE_SECONDS
                while self._in_flight and time.perf_counter() < deadline:
                    self._drain([], 0.05)
            except signals.Interrupted:  # a signal during the grace period: stop waiting
                self._end_in_flight(abandon=True)  # while the signal is still on its way out
                raise
            except (psycopg2.Error, ConnectionLost):
                pass  # the server or the monitor is gone: the scratch database's forced drop ends what is left
        self._end_in_flight(abandon)

    def _end_in_flight(self, abandon: bool) -> None:
        """Terminate the backends of the steps in flight (of every session, if `abandon`)
        and drop their workers (see stop)."""
        flights = list(self._in_flight.values())
        workers = list(self.sessions.values()) if abandon else [f.worker for f in flights]
        doomed = {*(self.run_pids if abandon else ()), *(f.watched_pid for f in flights)}
        try:
            for pid in doomed:
                self.monitor.terminate(pid)
        except (psycopg2.Error, ConnectionLost):
            pass  # as above; a lost monitor is named at its next use
        for worker in workers:
            self.pool.discard(worker)
        self._in_flight.clear()

    def session_ended(self, session: str, reason: ErrorInfo) -> None:
        """Record that the server ended `session` after its last step (for example
        idle_in_transaction_session_timeout, or pg_terminate_backend), with the server's reason."""
        now = self._now()
        self._append(session, "", "", Outcome.ENDED, now, now, error=reason, transaction_status="closed")

    # -- waiting ----------------------------------------------------------------------

    def _wait_for(self, session: str) -> None:
        """Wait until `session`'s step completes, then settle and record what arrived."""
        flight = self._in_flight[session]
        deadline = time.perf_counter() + self.step_timeout
        arrived: list[Arrival] = []
        while session in self._in_flight:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                arrived.extend(self._time_out([flight]))
                break
            self._drain(arrived, min(remaining, WAIT_CHECK_SECONDS))
            if not arrived and session in self._in_flight:
                self._record_wait_changes()
        self._settle(arrived, trigger=None)

    def _record_wait_changes(self) -> None:
        """While nothing has arrived and every step in flight is blocked, record the waits
        that changed since the run last settled (a lock_timeout or a deadlock ends a step,
        and so arrives first; this sees the rest as it happens)."""
        flights = list(self._in_flight.values())
        blocked = self.monitor.blocked([f.watched_pid for f in flights], self.run_pids)
        if any(f.watched_pid not in blocked for f in flights) or not self.completions.empty():
            return
        waits = {f.worker.name: self._read_wait(f) for f in flights}
        if self.completions.empty() and None not in waits.values():
            self._record([], None, [], self._apply_waits(flights, waits))

    def _settle(self, arrived: list[Arrival], trigger: InFlight | None) -> None:
        """Wait until every step in flight is blocked, then record events in causal order."""
        deadline = time.perf_counter() + self.step_timeout
        newly_blocked: list[InFlight] = []
        changed: list[InFlight] = []
        while self._in_flight and not self.ended_early:
            self._drain(arrived, self.poll_interval)
            if not self._in_flight:
                break
            flights = list(self._in_flight.values())
            blocked = self.monitor.blocked([f.watched_pid for f in flights], self.run_pids)
            if not self.completions.empty():
                continue
            waiting = [f for f in flights if f.watched_pid not in blocked]
            if not waiting:
                waits = {f.worker.name: self._read_wait(f) for f in flights}
                waiting = [f for f in flights if waits[f.worker.name] is None]
                if not waiting and self.completions.empty():
                    newly_blocked = [f for f in flights if not f.blocked_recorded]
                    changed = self._apply_waits(flights, waits)
                    break
            if time.perf_counter() > deadline and waiting:
                arrived.extend(self._time_out(waiting))
        self._record(arrived, trigger, newly_blocked, changed)

    def _drain(self, arrived: list[Arrival], wait: float) -> None:
        """Collect completions: wait up to `wait` for the first, then take all that are there."""
        try:
            item = self.completions.get(timeout=wait) if wait > 0 else self.completions.get_nowait()
        except queue.Empty:
            return
        while True:
            worker, result = item
            flight = self._in_flight.get(worker.name)
            if flight is not None and flight.worker is worker:  # not a late result of a discarded worker
                del self._in_flight[worker.name]
                step_result = self._as_result(result, flight)
                if self._lost_by(worker, flight.step, step_result):
                    self.pool.discard(worker)
                    raise connection_lost(worker.label, step_result.error)
                arrived.append(Arrival(flight, step_result))
            try:
                item = self.completions.get_nowait()
            except queue.Empty:
                return

    def _lost_by(self, worker: SessionWorker, step: str, result: StepResult) -> bool:
        """Did the step fail because the session's connection broke, when the
        scenario does not expect that step to fail? Then the run cannot go on. A Python step
        that caught the loss itself, or an expected failure, is part of the lesson."""
        return worker.session.broken and result.error is not None and step not in self.expected_errors

    def _read_wait(self, flight: InFlight) -> Wait | None:
        """What a blocked step waits for now: its blockers' names, the lock, and when it was read
        (perf_counter). None when the wait was read in the middle of a change (its blocker just
        ended, say): nobody blocks it, or nobody of the run blocks its lock, though the monitor
        had found it waiting for one of them. The caller reads it again."""
        info = self.monitor.wait_info(flight.watched_pid)
        by_pid = {**self.extra_connections, **{w.pid: name for name, w in self.sessions.items()}}
        blocked_by = tuple(by_pid[p] for p in info.blocker_pids if p in by_pid)
        if not info.blocker_pids or (info.lock.locktype is not None and not blocked_by):
            return None  # a safe-snapshot wait may be for transactions outside the run: no locktype
        return blocked_by, dataclasses.replace(info.lock, detected=time.time()), time.perf_counter()

    @staticmethod
    def _apply_waits(flights: list[InFlight], waits: dict[str, Wait | None]) -> list[InFlight]:
        """Store each flight's current wait; return the flights already recorded as blocked
        whose blockers or lock (kind, mode, object) changed since."""
        changed = []
        for flight in flights:
            wait = waits[flight.worker.name]
            assert wait is not None  # the callers apply only complete readings
            blocked_by, lock, read_at = wait
            if flight.blocked_recorded and (blocked_by, lock.what) == (
                flight.blocked_by, flight.lock.what if flight.lock else None
            ):
                continue
            if flight.blocked_recorded:
                changed.append(flight)
            flight.blocked_by, flight.lock, flight.detected_at = blocked_by, lock, read_at
        return changed

    def _time_out(self, flights: list[InFlight]) -> list[Arrival]:
        """Cancel steps that outlived the timeout; the run ends after recording them."""
        first = flights[0]
        # A Python step's statement can be cancelled; its own Python code cannot (a thread
        # cannot be killed): say which was done.
        done = "cancelled its statement, if it was in one," if first.python else "cancelled it"
        self.ended_early = (
            f"step {first.step} ({first.worker.name}) did not finish within "
            f"{self.step_timeout:g} s; txnlab {done} and stopped the run"
        )
        doomed = list(self._in_flight.values())
        for flight in doomed:
            self.monitor.cancel(flight.watched_pid)
        arrived: list[Arrival] = []
        deadline = time.perf_counter() + CANCEL_GRACE_SECONDS
        while self._in_flight and time.perf_counter() < deadline:
            self._drain(arrived, 0.05)
        for flight in list(self._in_flight.values()):  # cancel did not work: end the backend
            self.monitor.terminate(flight.watched_pid)
            self.pool.discard(flight.worker)
            now = time.perf_counter()
            arrived.append(Arrival(flight, StepResult(started=flight.sent_at, ended=now)))
        self._in_flight.clear()
        for arrival in arrived:
            arrival.timed_out = True
        return arrived

    # -- recording --------------------------------------------------------------------

    def _record(
        self, arrived: list[Arrival], trigger: InFlight | None, newly_blocked: list[InFlight],
        changed: list[InFlight],
    ) -> None:
        """Append the settled state: the trigger's own result, the steps that now wait, the
        completions in causal order, then the waits that changed (they are the state after
        those completions)."""
        own = [a for a in arrived if a.flight is trigger]
        if own:
            self._append_result(own[0], after_wait=False)
        for flight in newly_blocked:
            self._append_wait(flight, changed=False)
            flight.blocked_recorded = True
        for arrival in _causal_order([a for a in arrived if a.flight is not trigger]):
            self._append_result(arrival, after_wait=arrival.flight.blocked_recorded)
        for flight in changed:  # still in flight: read after the arrivals were taken
            self._append_wait(flight, changed=True)

    def _append_wait(self, flight: InFlight, changed: bool) -> None:
        self._append(
            flight.worker.name, flight.step, flight.sql, Outcome.BLOCKED,
            flight.sent_at - self.origin, flight.detected_at - self.origin,
            blocked_by=flight.blocked_by, lock=flight.lock, wait_changed=changed, python=flight.python,
        )

    def _append_result(self, arrival: Arrival, after_wait: bool) -> None:
        flight, result = arrival.flight, arrival.result
        if result.type_oids is not None:
            result = replace(result, column_types=self.types.names(result.type_oids))
        self.results[flight.step] = result
        if result.styles is not None:
            self._styles[flight.worker.name] = result.styles
        outcome = Outcome.TIMEOUT if arrival.timed_out else (Outcome.ERROR if result.error else Outcome.OK)
        ended = result.ended - self.origin
        if after_wait:  # released by a blocker's event: two threads' clocks may read it earlier
            ended = max([ended, *(self._last_ended(b) for b in flight.blocked_by)])
        self._append(
            flight.worker.name, flight.step, flight.sql, outcome,
            flight.sent_at - self.origin, ended,
            after_wait=after_wait, columns=result.columns, column_types=result.column_types, rows=result.rows,
            rowcount=result.rowcount,
            error=result.error, transaction_status=result.transaction_status, notices=result.notices,
            blocked_by=flight.blocked_by if after_wait else (), lock=flight.lock if after_wait else None,
            status=result.status, driver_sent_nothing=result.driver_sent_nothing,
            column_origins=result.column_origins, driver_status=result.driver_status,
            backend=flight.watched_pid, python=flight.python,
        )

    def _append(self, session: str, step: str, sql: str, outcome: Outcome, started: float,
                ended: float, backend: int = 0, **details: Any) -> None:
        """Record an event; its captured views (`sent`, `server`, `holds`) are those of
        `backend`, the connection the step ran on (another session's, for a Python step run
        `on=` it), by default the session's own."""
        if details.get("error") is not None:
            details["error"] = readable_error(details["error"], self.schema, self._backends())
        if details.get("notices"):
            details["notices"] = tuple(unqualified(n, self.schema) for n in details["notices"])
        if self.observer is not None and session in self.sessions:
            pid = backend or self.sessions[session].pid
            session_pids = [w.pid for w in self.sessions.values()]
            details["sent"] = self.observer.sent(pid, session_pids)
            details["server"] = self.observer.server_view(
                pid, [*session_pids, *self.lab_pids], self.extra_connections
            )
        if step in self.locks_after and outcome is not Outcome.BLOCKED and session in self.sessions:
            details["holds"] = held_locks(self.monitor, backend or self.sessions[session].pid, self.schema)
        self.events.append(
            Event(seq=len(self.events) + 1, session=session, step=step, sql=sql, outcome=outcome,
                  started=started, ended=ended, **details)
        )

    def _backends(self) -> dict[int, str]:
        """Who each backend of the run is, as messages should name it: "session a", or the
        label a Python scenario gave a connection of its own (a pool's, an engine's)."""
        return {**self.extra_connections, **{w.pid: f"session {name}" for name, w in self.sessions.items()}}

    def _last_ended(self, session: str) -> float:
        """When the session's latest event ended (0 before it has any)."""
        return next((e.ended for e in reversed(self.events) if e.session == session), 0.0)

    def _now(self) -> float:
        return time.perf_counter() - self.origin

    def _as_result(self, result: Any, flight: InFlight) -> StepResult:
        """A job's result; a job that raised past its own handling (Ctrl-C, a bug) is an error."""
        if isinstance(result, StepResult):
            return result
        now = time.perf_counter()
        if isinstance(result, BaseException):
            return StepResult(started=flight.sent_at, ended=now, error=error_info(result))
        return StepResult(
            started=flight.sent_at, ended=now, columns=("result",), rows=((python_value(result),),),
            column_types=(PYTHON,),
        )

    def _substitute(self, sql: str, session: str) -> str:
        """`sql`, to be sent by `session`, with each `${step.column}` replaced by the value that
        column had in the first row the step returned, as an exact SQL literal (see
        txnlab.values.sql_literal), printed in `session`'s DateStyle and IntervalStyle.
        Raises LookupError when the step returned no such row or column."""
        wanted = self._styles.get(session) or self.sessions[session].session.styles()

        def adapt(value: Any) -> str:
            return self.monitor.conn.cursor().mogrify("%s", [value]).decode()

        def value(match: Any) -> str:
            step, column = match.group(1), match.group(2)
            result = self.results.get(step)
            if result is None:  # not sent yet (in another order, --permutations) or still running
                raise LookupError(f"${{{step}.{column}}}: step {step} has no result yet")
            if result.error or not result.rows:
                raise LookupError(f"${{{step}.{column}}}: step {step} returned no row to read it from")
            if not result.columns or column not in result.columns:
                raise LookupError(f"${{{step}.{column}}}: step {step} has no column {column!r}")
            index = result.columns.index(column)
            column_type = result.column_types[index] if result.column_types else PYTHON
            cell = result.rows[0][index]
            if cell is not None and column_type not in (PYTHON, UNKNOWN_TYPE) and result.styles not in (None, wanted):
                cell = self.types.restyled(cell, column_type, result.styles, wanted)
            return sql_literal(cell, column_type, adapt)

        return PLACEHOLDER.sub(value, sql)


def _causal_order(arrivals: list[Arrival]) -> list[Arrival]:
    """Order completions so that a session comes after the sessions it was waiting for,
    by the blockers read when the run last settled (the current ones, not the first).

    In a wait cycle (a deadlock) the step that failed, the victim, broke the cycle and
    comes first; otherwise steps keep the order in which they were sent.
    """
    remaining = sorted(arrivals, key=lambda a: a.flight.order)
    ordered = []
    while remaining:
        pending_sessions = {a.flight.worker.name for a in remaining}
        ready = [
            a for a in remaining if not set(a.flight.blocked_by) & (pending_sessions - {a.flight.worker.name})
        ]
        failed = [a for a in remaining if a.result.error is not None]
        chosen = (ready or failed or remaining)[0]
        ordered.append(chosen)
        remaining.remove(chosen)
    return ordered
