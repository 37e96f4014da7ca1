"""Run a `.spec` scenario as PostgreSQL's isolationtester runs it, over libpq itself.

The algorithm is isolationtester's (src/test/isolation/isolationtester.c, PostgreSQL 18:
run_permutation, try_complete_step, try_complete_steps, step_has_blocker), and so are the
calls it makes to libpq, through psycopg 3's binding `psycopg.pq`: every result of a step
(PQgetResult until NULL), notices in the order libpq parses them (a notice receiver per
session; the control connection's are discarded), NOTIFY messages after a step's results,
errors' severity and primary message, values as the server's text. What isolationtester
prints, in order, becomes one `Timeline` per permutation (see `timeline.py`); the renderer
`render/isolationtester.py` prints it back.

Connections: one control connection (the setup and teardown blocks, and the prepared
`pg_isolation_test_session_is_blocked` check, "isolationtester_waiting") and one per
session, all opened once per spec and kept for every permutation, as isolationtester does.
Sessions keep the server's defaults: txnlab sets no isolation level and sends no BEGIN.
The objects live in the scratch database's `public` schema.

The environment pg_regress gives isolationtester (src/test/regress/pg_regress.c): PGTZ=America/Los_Angeles
and PGDATESTYLE="Postgres, MDY" in the environment, and a database created with lc_monetary,
lc_numeric and lc_time 'C', bytea_output 'hex' and timezone_abbreviations 'Default'. Here they
are every connection's startup options (lc_messages needs a superuser, so it stays the
server's: txnlab's embedded server answers in English).

Sessions the server ends (a step's `pg_terminate_backend`, its own or another's) are part of
the spec, as in isolationtester: the step that reads the end shows the server's FATAL and then
libpq's own error ("server closed the connection unexpectedly ..."), recorded as the step's
ERROR event and an Outcome.ENDED event, and the other sessions go on. What comes later to
that session fails with libpq's "no connection to the server": a session's teardown fails
and the spec goes on; a step (an Outcome.SKIPPED event, "failed to send query for step NAME")
or a session's setup ends the spec, where isolationtester exits 1: the timeline's
`ended_early` says why, and `session_lost` gives the one-line error (exit 3) the CLI ends with.
A control connection that fails is a ServerError at once (the server is gone, most likely).

Timeouts: isolationtester cancels a step after max_step_wait (360 s) and gives up after twice
that; here `step_timeout` (txnlab's --step-timeout, seconds) plays that part: the cancel is
recorded as an Outcome.TIMEOUT event ("isolationtester: canceling step NAME after N seconds"),
and a step still running after twice the timeout ends the spec (ScenarioError, exit 2). A step
sent to a session still waiting in an earlier one (an invalid permutation) gets the same limit.
Where isolationtester would block in PQgetResult forever (a multi-statement step that waits
after its first statement completed), txnlab applies the same timeout.

Lock waits: isolationtester asks the server whether a running step waits for a lock each
time 10 ms pass without an answer. txnlab asks the same question 1 ms (`first_check`) after
it sends a step or polls a waiting one, then every 10 ms: the answer is the same, and so is
the output (all 105 reference specs), but each of the corpus's 549 waits costs about 1 ms
instead of 10.

One ordering the timeline cannot hold: notices libpq reads just before a step's error (a later
statement of a multi-statement step raising a notice, then failing) or after its last result
print before those lines in isolationtester; here they are an Outcome.NOTICE event after the
step's completion. None of the 105 reference specs depends on it.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import pq

from txnlab.errors import ScenarioError, ServerError
from txnlab.levels import Level
from txnlab.render.isolationtester import render_isolationtester
from txnlab.runner.libpq import (
    CONTROL,
    closed_by_server,
    connection_error,
    error_info,
    lost,
    open_connections,
    server_text,
)
from txnlab.runner.monitor import LockMonitor
from txnlab.runner.names import readable_error
from txnlab.scenario.model import Blocker, Scenario, Step
from txnlab.scenario.spec_source import load_spec
from txnlab.timeline import SESSION_LOST, SETUP_FAILED, TRANSACTION_STATUS, ErrorInfo, Event, Notification, Outcome, ResultSet, Timeline

if TYPE_CHECKING:
    from txnlab.runner.lab import Lab

WAITING = b"isolationtester_waiting"
CHECK_INTERVAL = 0.010  # isolationtester's select() timeout between lock-wait checks, seconds
FIRST_CHECK = 0.001  # txnlab's first check after a step is sent or input arrives, seconds
# What txnlab answers a spec's COPY FROM STDIN with: it has no data to send (see _end_copy).
COPY_REFUSAL = b"a .spec cannot send COPY data"
COPY_STATUSES = (pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_BOTH)


@dataclass
class _PermutationStep:
    """One entry of a permutation line: the step and its blocker markers."""

    step: Step
    blockers: tuple[Blocker, ...]
    target_notices: dict[int, int] = field(default_factory=dict)  # marker index -> notices needed


@dataclass
class _Deadline:
    """When a wait for a step began (time.monotonic(), s), and whether it was cancelled since."""

    started: float
    canceled: bool = False


@dataclass
class _Connection:
    """A libpq connection of the run, as isolationtester's IsoConnInfo."""

    name: str  # the session's name; CONTROL for the control connection
    pg: pq.PGconn
    pid: int
    active: _PermutationStep | None = None
    total_notices: int = 0
    pending: list[str] = field(default_factory=list)  # notices parsed, not yet in an event


def session_lost(timeline: Timeline) -> ServerError | None:
    """The one-line error (exit 3) a spec run ends with when it stopped because a session's
    connection was gone (`_SessionGone`: a step or a session's setup could not be sent, where
    isolationtester exits 1); None otherwise. The output shows the line isolationtester prints."""
    if timeline.ended_early != SESSION_LOST:
        return None
    gone = next(e for e in reversed([*timeline.setup, *timeline.events]) if e.error is not None)
    assert gone.error is not None
    what = "its setup failed" if gone in timeline.setup else f"step {gone.step} could not be sent"
    return ServerError(f"session {gone.session}'s connection was lost, so {what}: {gone.error.message}")


class _SessionGone(Exception):
    """A step or a session's setup was sent to a session whose connection the server closed
    earlier: isolationtester exits there ("failed to send query for step NAME", "setup of
    session NAME failed"), so the permutation, and the spec, end (Timeline.ended_early SESSION_LOST)."""


class SpecRun:
    """The connections of one spec run and isolationtester's algorithm over them.

    Use as a context manager: the connections close however the block ends (a step still
    running is cancelled first, so that nothing keeps a lock)."""

    def __init__(
        self,
        scenario: Scenario,
        dsn: str,
        *,
        level: Level,
        server_version: str,
        step_timeout: float,
        monitor: LockMonitor | None = None,
        first_check: float = FIRST_CHECK,
    ) -> None:
        self.scenario = scenario
        self.dsn = dsn
        self.level = level
        self.server_version = server_version
        self.step_timeout = step_timeout
        self.monitor = monitor
        self.first_check = first_check
        self.control: _Connection | None = None
        self.sessions: dict[str, _Connection] = {}
        self._types: dict[tuple[int, int], str] = {}
        self._origin = 0.0
        self._events: list[Event] = []
        self._sent: dict[int, float] = {}  # id of a permutation step -> when it was sent (run clock, s)
        self._new_notice = False  # isolationtester's any_new_notice
        self._names: tuple[str, ...] = ()  # the permutation running

    def __enter__(self) -> SpecRun:
        try:
            names = [spec.name for spec in self.scenario.sessions]
            control, *sessions = open_connections(self.dsn, [CONTROL, *names])
            self.control = _Connection(CONTROL, control, control.backend_pid)
            for name, pg in zip(names, sessions, strict=True):
                connection = _Connection(name, pg, pg.backend_pid)
                pg.notice_handler = self._receiver(connection)
                self.sessions[name] = connection
            pids = ",".join(str(c.pid) for c in self.sessions.values())
            query = f"SELECT pg_catalog.pg_isolation_test_session_is_blocked($1, '{{{pids}}}')"
            result = self.control.pg.prepare(WAITING, query.encode())
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise ServerError(f"cannot prepare the lock wait check: {error_info(result).message}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel what still runs, then close every connection (the server rolls back what is open)."""
        for connection in self.sessions.values():
            if connection.pg.status == pq.ConnStatus.OK and connection.pg.transaction_status == pq.TransactionStatus.ACTIVE:
                try:
                    connection.pg.get_cancel().cancel()
                except Exception:  # noqa: BLE001 - closing anyway: the server ends the backend with it
                    pass
        for connection in [*self.sessions.values(), *([self.control] if self.control else [])]:
            connection.pg.finish()
        self.sessions = {}
        self.control = None

    def _receiver(self, connection: _Connection) -> Callable[[pq.PGresult], None]:
        def receive(result: pq.PGresult) -> None:
            connection.pending.append(result.error_message.decode("utf-8", "replace").removesuffix("\n"))
            connection.total_notices += 1
            self._new_notice = True

        return receive

    # -- one permutation ---------------------------------------------------------------------

    def run_permutation(self, names: Sequence[str], markers: Sequence[tuple[Blocker, ...]] = ()) -> Timeline:
        """Run one permutation (its steps' names, and each step's markers) and return its
        timeline; timeline.ended_early says so when the setup failed or a step or session
        setup was sent to a session the server had closed (isolationtester stops the spec
        there: the caller runs no further permutation)."""
        assert self.control is not None
        self._origin = time.perf_counter()
        self._events = []
        self._names = tuple(names)
        timeline = Timeline(
            scenario=self.scenario.name, level=self.level, sessions=tuple(self.sessions),
            permutation=tuple(names), server_version=self.server_version,
        )
        steps = [
            _PermutationStep(self.scenario.steps[name], tuple(markers[i]) if i < len(markers) else ())
            for i, name in enumerate(names)
        ]
        try:
            if not self._setup(timeline):
                timeline.ended_early = SETUP_FAILED
                timeline.duration = time.perf_counter() - self._origin
                return timeline
            self._steps(steps)
        except _SessionGone:
            timeline.ended_early = SESSION_LOST
            timeline.events = self._events
            timeline.duration = time.perf_counter() - self._origin
            return timeline
        timeline.events = self._events
        self._teardown(timeline)
        timeline.duration = time.perf_counter() - self._origin
        return timeline

    def _setup(self, timeline: Timeline) -> bool:
        assert self.control is not None
        for index, sql in enumerate(self.scenario.setup):
            event = self._exec(self.control, "", f"setup.{index}", sql, len(timeline.setup) + 1)
            timeline.setup.append(event)
            if event.outcome is Outcome.ERROR:
                return False
        for spec in self.scenario.sessions:
            for sql in spec.setup:
                event = self._exec(self.sessions[spec.name], spec.name, f"session.{spec.name}.setup.0", sql,
                                   len(timeline.setup) + 1)
                timeline.setup.append(event)
                if event.outcome is Outcome.ERROR:
                    if self.sessions[spec.name].pg.status == pq.ConnStatus.BAD:
                        raise _SessionGone
                    return False
        return True

    def _teardown(self, timeline: Timeline) -> None:
        assert self.control is not None
        for spec in self.scenario.sessions:
            for sql in spec.teardown:
                timeline.teardown.append(
                    self._exec(self.sessions[spec.name], spec.name, f"session.{spec.name}.teardown.0", sql,
                               len(timeline.teardown) + 1))
        for index, sql in enumerate(self.scenario.teardown):
            timeline.teardown.append(self._exec(self.control, "", f"teardown.{index}", sql, len(timeline.teardown) + 1))

    def _exec(self, connection: _Connection, session: str, name: str, sql: str, seq: int) -> Event:
        """PQexec, as isolationtester runs a setup or teardown block: its last result (an
        error, if one came), and the notices read meanwhile. Under the step timeout: a block
        that waits too long is cancelled (and fails), where isolationtester would wait forever.
        A session the server closed earlier fails with libpq's words, as PQexec does there; a
        control connection that cannot send is a ServerError (exit 3)."""
        started = time.perf_counter() - self._origin
        base = dict(seq=seq, session=session, step=name, sql=sql, started=started)
        try:
            connection.pg.send_query(sql.encode())
        except Exception:  # noqa: BLE001 - psycopg's OperationalError: the connection is gone (PQexec fails)
            if connection is self.control:  # the server itself is gone, most likely: txnlab cannot go on
                raise lost(connection.name, connection.pg, f"while sending {name}") from None
            return Event(outcome=Outcome.ERROR, error=connection_error(connection.pg), ended=started,
                         transaction_status="closed", **base)
        result = None
        while True:
            self._await_result(connection, None, name)
            if (next_result := connection.pg.get_result()) is None:
                break
            if next_result.status in COPY_STATUSES:
                self._end_copy(connection, next_result, name)
                continue
            if result is None or result.status != pq.ExecStatus.FATAL_ERROR:
                result = next_result  # PQexec keeps the last result, or the first error
        if result is None:  # cannot happen: a sent query answers at least one result
            raise lost(connection.name, connection.pg, f"answering {name}")
        notices = tuple(connection.pending) if connection is not self.control else ()
        connection.pending.clear()
        closed = connection.pg.status == pq.ConnStatus.BAD
        base.update(ended=time.perf_counter() - self._origin, notices=notices,
                    transaction_status="closed" if closed else TRANSACTION_STATUS.get(connection.pg.transaction_status))
        if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK, pq.ExecStatus.EMPTY_QUERY):
            results = (self._result_set(result),) if result.status != pq.ExecStatus.EMPTY_QUERY else ()
            last = results[-1] if results else ResultSet(None, None, None, None)
            return Event(outcome=Outcome.OK, columns=last.columns, column_types=last.column_types, rows=last.rows,
                         status=last.status, rowcount=last.rowcount, results=results, **base)
        error = self._error(result)
        if closed:
            # The server closed it: isolationtester prints PQerrorMessage, its FATAL and libpq's words after it.
            error = replace(error, libpq_message=connection.pg.error_message.decode("utf-8", "replace"))
        return Event(outcome=Outcome.ERROR, error=error, **base)

    def _error(self, result: pq.PGresult) -> ErrorInfo:
        """A spec SQL's error, knowing which session each backend its texts name is (the
        deadlock DETAIL's "Process 812 waits for ...": renderers say "session s1")."""
        return readable_error(error_info(result), None, {c.pid: f"session {c.name}" for c in self.sessions.values()})

    def _steps(self, steps: list[_PermutationStep]) -> None:
        """run_permutation's loop over the steps, then the wait for those still running."""
        waiting: list[_PermutationStep] = []
        for pstep in steps:
            connection = self.sessions[pstep.step.session]
            if connection.active is not None:
                waiting = self._wait_for_session(connection, waiting)
            self._send(connection, pstep)
            must_wait = self._try_complete(pstep, nonblock=True, retry=False)
            waiting = self._try_complete_all(waiting, nonblock=True)
            if must_wait:
                waiting.append(pstep)
        waiting = self._try_complete_all(waiting, nonblock=False)
        if waiting:  # cannot happen: a blocking try completes each step or gives up
            raise self._hang("failed to complete permutation due to mutually-blocking steps")

    def _wait_for_session(self, connection: _Connection, waiting: list[_PermutationStep]) -> list[_PermutationStep]:
        """The next step's session is still busy with an earlier step: wait for it, polling the others."""
        started = time.monotonic()
        while connection.active is not None:
            old = connection.active
            if not self._try_complete(old, nonblock=False, retry=True):
                waiting = [w for w in waiting if w is not old]
            waiting = self._try_complete_all(waiting, nonblock=True)
            if connection.active is not None and time.monotonic() - started > 2 * self.step_timeout:
                active = " ".join(c.active.step.name for c in self.sessions.values() if c.active is not None)
                raise self._hang(
                    f"step {connection.active.step.name} timed out after {int(time.monotonic() - started)} "
                    f"seconds (active steps: {active}): a step of a waiting session in the permutation?")
        return waiting

    def _send(self, connection: _Connection, pstep: _PermutationStep) -> None:
        """PQsendQuery. On a connection the server closed earlier it fails: isolationtester
        prints "failed to send query for step NAME: ..." and exits; here a SKIPPED event with
        libpq's error, then `_SessionGone` ends the permutation and the spec."""
        try:
            connection.pg.send_query(pstep.step.sql.encode())
        except Exception:  # noqa: BLE001 - psycopg's OperationalError: the connection is gone
            error = connection_error(connection.pg)
            self._event(connection, pstep, Outcome.SKIPPED, error=error)
            raise _SessionGone from None
        connection.active = pstep
        self._sent[id(pstep)] = time.perf_counter() - self._origin
        pstep.target_notices = {
            index: blocker.notices + self._session_of(blocker).total_notices
            for index, blocker in enumerate(pstep.blockers)
            if blocker.step is not None and blocker.notices is not None
        }

    def _session_of(self, blocker: Blocker) -> _Connection:
        assert blocker.step is not None
        return self.sessions[self.scenario.steps[blocker.step].session]

    def _try_complete_all(self, waiting: list[_PermutationStep], *, nonblock: bool) -> list[_PermutationStep]:
        """try_complete_steps: retry each waiting step, again while a completion or a notice may
        have released a marker."""
        while True:
            self._new_notice = False
            before = len(waiting)
            have_blocker = False
            still = []
            for pstep in waiting:
                if self._try_complete(pstep, nonblock=nonblock, retry=True):
                    have_blocker = have_blocker or bool(pstep.blockers)
                    still.append(pstep)
            waiting = still
            if not (have_blocker and (len(waiting) < before or self._new_notice)):
                return waiting

    def _try_complete(self, pstep: _PermutationStep, *, nonblock: bool, retry: bool) -> bool:
        """try_complete_step: True while the step is not complete (it waits for a lock and
        `nonblock` allows returning, or a marker holds it); False once reported complete."""
        connection = self.sessions[pstep.step.session]
        try:
            return self._complete(connection, pstep, nonblock=nonblock, retry=retry)
        finally:
            if connection.pending:  # notices printed while the step still waits
                self._event(connection, pstep, Outcome.NOTICE)

    def _complete(self, connection: _Connection, pstep: _PermutationStep, *, nonblock: bool, retry: bool) -> bool:
        if not retry and any(b.once for b in pstep.blockers):
            self._waiting(connection, pstep)
            return True
        pg = connection.pg
        deadline = _Deadline(time.monotonic())
        timeout = self.first_check
        while pg.is_busy():
            readable, _, _ = select.select([pg.socket], [], [], timeout)
            timeout = CHECK_INTERVAL
            if readable:
                self._consume(connection)
                continue
            if nonblock and self._blocked(connection):
                self._consume(connection)
                if not pg.is_busy():
                    break
                if not retry:
                    self._waiting(connection, pstep)
                return True
            self._enforce(deadline, connection, pstep, f"step {pstep.step.name}")
        if self._has_blocker(pstep):
            if not retry:
                self._waiting(connection, pstep)
            return True
        self._finish(connection, pstep, after_wait=retry)
        return False

    def _enforce(
        self, deadline: _Deadline, connection: _Connection, pstep: _PermutationStep | None, what: str,
    ) -> None:
        """isolationtester's limits on one wait for a step (or a setup/teardown block, `pstep`
        None): cancel it after the step timeout (for a step, an Outcome.TIMEOUT event whose
        `started` is when the wait began), give up after twice that. `what` names it."""
        elapsed = time.monotonic() - deadline.started
        if elapsed > self.step_timeout and not deadline.canceled:
            connection.pg.get_cancel().cancel()
            deadline.canceled = True
            if pstep is not None:
                now = time.perf_counter() - self._origin
                self._event(connection, pstep, Outcome.TIMEOUT, started=now - elapsed)
        if elapsed > 2 * self.step_timeout:
            raise self._hang(f"{what} timed out after {int(elapsed)} seconds")

    def _await_result(self, connection: _Connection, pstep: _PermutationStep | None, what: str) -> None:
        """Wait until PQgetResult would not block, under the step timeout: isolationtester
        blocks in it, forever when a later statement of the step waits for a lock."""
        deadline = _Deadline(time.monotonic())
        while connection.pg.is_busy():
            readable, _, _ = select.select([connection.pg.socket], [], [], CHECK_INTERVAL)
            if readable:
                if closed_by_server(connection.pg.socket):
                    return  # PQgetResult reads the end itself and answers libpq's error, as in isolationtester
                self._consume(connection)
            else:
                self._enforce(deadline, connection, pstep, what)

    def _end_copy(self, connection: _Connection, result: pq.PGresult, what: str) -> None:
        """End a COPY the spec's SQL started, so that the statement finishes: a spec has no
        data to send, and libpq answers a connection in COPY state with the same COPY result
        forever (isolationtester loops there). COPY FROM STDIN is refused with COPY_REFUSAL
        (the server then fails the statement: "COPY from stdin failed: ..."); the rows of
        COPY TO STDOUT are read and dropped, and its "COPY n" result follows."""
        pg = connection.pg
        if result.status != pq.ExecStatus.COPY_OUT:
            try:
                pg.put_copy_end(COPY_REFUSAL)
                pg.flush()
            except Exception:  # noqa: BLE001 - psycopg's OperationalError: the connection is gone
                raise lost(connection.name, connection.pg, f"ending the COPY of {what}") from None
            return
        deadline = _Deadline(time.monotonic())
        while (received := self._copy_data(connection, what)) >= 0:  # -1: the COPY is over
            if received == 0:  # no whole row yet: wait for more, under the step timeout
                if select.select([pg.socket], [], [], CHECK_INTERVAL)[0]:
                    self._consume(connection)
                else:
                    self._enforce(deadline, connection, None, what)

    @staticmethod
    def _copy_data(connection: _Connection, what: str) -> int:
        """PQgetCopyData without blocking: bytes of the row read, 0 none yet, -1 the COPY is over."""
        try:
            return connection.pg.get_copy_data(1)[0]
        except Exception:  # noqa: BLE001 - psycopg's OperationalError (libpq's -2): the connection is gone
            raise lost(connection.name, connection.pg, f"reading the COPY of {what}") from None

    def _hang(self, problem: str) -> ScenarioError:
        """The spec cannot go on (isolationtester exits there too): one line naming the permutation."""
        return ScenarioError(str(self.scenario.source), f"permutation {' '.join(self._names)}: {problem}")

    def _consume(self, connection: _Connection, *, quietly: bool = False) -> bool:
        """PQconsumeInput: True when it read. Where isolationtester exits on failure ("PQconsumeInput
        failed") a ServerError; `quietly` where it goes on (reading a step's results and NOTIFYs)."""
        try:
            connection.pg.consume_input()
        except Exception:  # noqa: BLE001 - psycopg's OperationalError: the connection is gone
            if quietly:
                return False
            raise lost(connection.name, connection.pg, "while reading its answer") from None
        return True

    def _blocked(self, connection: _Connection) -> bool:
        assert self.control is not None
        result = self.control.pg.exec_prepared(WAITING, [str(connection.pid).encode()])
        if self.control.pg.status == pq.ConnStatus.BAD:
            raise lost(self.control.name, self.control.pg, f"while asking whether session {connection.name} waits")
        if result.status != pq.ExecStatus.TUPLES_OK or result.ntuples != 1:
            raise ServerError(f"the lock wait check failed: {error_info(result).message}")
        return (result.get_value(0, 0) or b"")[:1] == b"t"

    def _has_blocker(self, pstep: _PermutationStep) -> bool:
        """step_has_blocker: a `(step)` marker whose step still runs, or a `(step notices N)`
        marker whose session has not yet sent N more notices."""
        for index, blocker in enumerate(pstep.blockers):
            if blocker.step is None:
                continue
            other = self._session_of(blocker)
            if blocker.notices is None:
                if other.active is not None and other.active.step.name == blocker.step:
                    return True
            elif other.total_notices < pstep.target_notices[index]:
                return True
        return False

    def _waiting(self, connection: _Connection, pstep: _PermutationStep) -> None:
        """The step's "<waiting ...>" line: a BLOCKED event, with whom it waits for and the lock."""
        blocked_by: tuple[str, ...] = ()
        lock = None
        if self.monitor is not None:
            info = self.monitor.wait_info(connection.pid)
            names = {c.pid: c.name for c in self.sessions.values()}
            blocked_by = tuple(names[pid] for pid in info.blocker_pids if pid in names)
            lock = info.lock if info.lock.locktype is not None or info.blocker_pids else None
        self._event(connection, pstep, Outcome.BLOCKED, blocked_by=blocked_by, lock=lock)

    def _finish(self, connection: _Connection, pstep: _PermutationStep, *, after_wait: bool) -> None:
        """The step is complete: its results (PQgetResult until NULL), then its NOTIFY messages."""
        pg = connection.pg
        notices = tuple(connection.pending)
        connection.pending.clear()
        results: list[ResultSet] = []
        errors: list[ErrorInfo] = []
        late: list[str] = []
        while True:
            self._await_result(connection, pstep, f"step {pstep.step.name}")
            if (result := pg.get_result()) is None:
                break
            if result.status in COPY_STATUSES:
                self._end_copy(connection, result, f"step {pstep.step.name}")
                continue
            if result.status == pq.ExecStatus.FATAL_ERROR:
                errors.append(self._error(result))
                late += connection.pending  # isolationtester prints them before the error line
            elif result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
                results.append(self._result_set(result, tuple(connection.pending)))
            else:
                late += connection.pending
            connection.pending.clear()
        notifications = []
        self._consume(connection, quietly=True)
        while (notify := pg.notifies()) is not None:
            names = {c.pid: c.name for c in self.sessions.values()}
            notifications.append(Notification(
                channel=notify.relname.decode("utf-8", "replace"), payload=notify.extra.decode("utf-8", "replace"),
                sender=names.get(notify.be_pid, f"PID {notify.be_pid}")))
            self._consume(connection, quietly=True)
        late += connection.pending
        connection.pending.clear()
        connection.active = None
        last = results[-1] if results else ResultSet(None, None, None, None)
        self._event(
            connection, pstep, Outcome.ERROR if errors else Outcome.OK, after_wait=after_wait,
            notices=notices, results=tuple(results), error=errors[0] if errors else None,
            notifications=tuple(notifications), columns=last.columns, column_types=last.column_types, rows=last.rows,
            status=last.status, rowcount=last.rowcount,
        )
        if pg.status == pq.ConnStatus.BAD:  # the server ended the session (its FATAL is the step's error)
            self._event(connection, pstep, Outcome.ENDED, error=errors[-1] if len(errors) > 1 else None)
        if late:
            connection.pending.extend(late)

    def _event(self, connection: _Connection, pstep: _PermutationStep, outcome: Outcome, **fields: object) -> None:
        if "notices" not in fields:
            fields["notices"] = tuple(connection.pending)
            connection.pending.clear()
        now = time.perf_counter() - self._origin
        fields.setdefault("started", now if outcome is Outcome.ENDED else self._sent.get(id(pstep), now))
        fields.setdefault("transaction_status", "closed" if connection.pg.status == pq.ConnStatus.BAD
                          else TRANSACTION_STATUS.get(connection.pg.transaction_status))
        self._events.append(Event(
            seq=len(self._events) + 1, session=connection.name, step=pstep.step.name,
            sql="" if outcome is Outcome.ENDED else pstep.step.sql, outcome=outcome, ended=now,
            **fields,  # type: ignore[arg-type]
        ))

    def _result_set(self, result: pq.PGresult, notices: tuple[str, ...] = ()) -> ResultSet:
        status = server_text(result.command_status)
        rowcount = result.command_tuples  # PQcmdTuples, None when the command reports no count
        if result.status != pq.ExecStatus.TUPLES_OK:
            return ResultSet(None, None, None, status, rowcount, notices)
        columns = tuple(server_text(result.fname(j)) or "" for j in range(result.nfields))
        rows = tuple(
            tuple(server_text(result.get_value(i, j)) for j in range(result.nfields)) for i in range(result.ntuples)
        )
        types = self._type_names([(result.ftype(j), result.fmod(j)) for j in range(result.nfields)])
        return ResultSet(columns, types, rows, status, rowcount, notices)

    def _type_names(self, keys: list[tuple[int, int]]) -> tuple[str, ...]:
        """format_type of each (type oid, typmod), asked once per spec on the control connection
        (ServerError when it fails: the control connection is gone)."""
        assert self.control is not None
        unknown = sorted({key for key in keys if key not in self._types})
        if unknown:
            values = ",".join(f"({oid},{mod})" for oid, mod in unknown)
            result = self.control.pg.exec_(
                f"SELECT o, m, pg_catalog.format_type(o, nullif(m, -1)) FROM (VALUES {values}) AS t(o, m)".encode())
            if result.status != pq.ExecStatus.TUPLES_OK:
                raise lost(self.control.name, self.control.pg, "while naming result types")
            for i in range(result.ntuples):
                oid, mod, name = (server_text(result.get_value(i, j)) for j in range(3))
                self._types[(int(oid or 0), int(mod or 0))] = name or "?"
        return tuple(self._types.get(key, "?") for key in keys)


def spec_permutations(
    scenario: Scenario, permutations: Sequence[Sequence[str]] | None = None,
) -> list[tuple[tuple[str, ...], tuple[tuple[Blocker, ...], ...]]]:
    """The permutations to run with their markers: the scenario's own (listed or generated),
    or the given ones, each with the markers of the scenario's first identical line (none
    when it lists no such line). ScenarioError for a given permutation naming no step."""
    own = [(p, tuple(scenario.blockers(i, j) for j in range(len(p)))) for i, p in enumerate(scenario.permutations)]
    if permutations is None:
        return own
    for permutation in permutations:
        unknown = [name for name in permutation if name not in scenario.steps]
        if unknown:
            raise ScenarioError(str(scenario.source), f"no step named {unknown[0]!r} (permutation {' '.join(permutation)})")
    markers = {}
    for names, blockers in own:
        markers.setdefault(names, blockers)
    return [(tuple(p), markers.get(tuple(p), ())) for p in permutations]


def run_spec(
    scenario: Scenario,
    dsn: str,
    *,
    level: Level,
    server_version: str,
    step_timeout: float,
    monitor: LockMonitor | None = None,
    permutations: Sequence[Sequence[str]] | None = None,
) -> list[Timeline]:
    """Run a spec scenario's permutations (see `spec_permutations`) in the database `dsn`
    names, as isolationtester does: one Timeline per permutation, in order; after a failed
    setup or a step sent to a session the server closed (its timeline's `ended_early`; see
    `session_lost`) no further permutation runs, as isolationtester stops there. Raises
    ServerError (a connection refused, the control connection lost, a session's lost while
    isolationtester too would exit) and ScenarioError (a step that hangs, an invalid permutation)."""
    timelines = []
    chosen = spec_permutations(scenario, permutations)
    try:
        with SpecRun(scenario, dsn, level=level, server_version=server_version, step_timeout=step_timeout,
                     monitor=monitor) as run:
            for names, markers in chosen:
                timeline = run.run_permutation(names, markers)
                timelines.append(timeline)
                if timeline.ended_early:
                    break
    except psycopg.Error as exc:  # a libpq call failed outright: a connection of the run is gone
        lines = str(exc).strip().splitlines()
        raise ServerError(f"a connection of the spec run failed: {lines[0] if lines else type(exc).__name__}") from None
    return timelines


def run_spec_file(path: Path, lab: Lab, *, wait_details: bool = True) -> tuple[str, list[Timeline]]:
    """Run a `.spec` file's permutations in the lab's database and return what isolationtester
    would print for it (the text pg_isolation_regress compares with expected/NAME.out) and
    the timelines. The entry point for running a spec without the CLI (`txnlab specs` runs
    one per spec, each in a lab of its own). `wait_details=False` leaves BLOCKED events'
    `blocked_by` and `lock` empty, which the printed text never shows: it saves a query of
    about 2 ms per wait. Raises ScenarioError (the spec cannot be read or parsed, a step or
    block hangs) and ServerError (a connection lost)."""
    scenario = load_spec(path)
    if wait_details:
        timelines = lab.run_permutations(scenario, Level.READ_COMMITTED)
    else:
        timelines = run_spec(scenario, lab.dsn, level=Level.READ_COMMITTED, server_version=lab.server_version,
                             step_timeout=lab.step_timeout)
    return render_isolationtester(scenario, timelines), timelines
