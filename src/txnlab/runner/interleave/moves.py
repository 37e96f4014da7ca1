"""The moves a test makes: start a call, resume it, send SQL, finish; each a timeline step of
a driven run (Lab.driving), sent as a scenario's steps are."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from functools import partial
from reprlib import Repr
from typing import Any

import psycopg2
import psycopg2.errors

from txnlab import signals
from txnlab.runner.execute import StepResult
from txnlab.runner.interleave.call import Call
from txnlab.runner.interleave.points import InterleaveError, Point
from txnlab.runner.lab import DrivenRun
from txnlab.server.connect import connect
from txnlab.timeline import Timeline

_ARGUMENTS = Repr()  # how a call's arguments are shown: short (Python 3.11's Repr takes no keywords)
_ARGUMENTS.maxstring = _ARGUMENTS.maxother = 30


class Interleaving:
    """A test's interleaving of application functions over a driven run's sessions.

    Every move is a timeline step, sent as a scenario's are: the next move goes out once
    every session with a step in flight has finished or is reported waiting by the server.
    Use it through `interleaving` (or the pytest fixture `txnlab_interleave`)."""

    def __init__(self, run: DrivenRun) -> None:
        self._run = run
        self._calls: list[Call] = []  # every call, in the order started
        self._steps = 0

    @property
    def sessions(self) -> tuple[str, ...]:
        return tuple(self._run.scheduler.sessions)

    @property
    def timeline(self) -> Timeline | None:
        """What happened, step by step, with the invariants and `final` rows: set when the
        block has ended (None inside it)."""
        return self._run.timeline

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """The rows `sql` returns now (Python values), on a connection of its own outside
        every session: the committed state, for the test to assert on inside the block.
        Raises InterleaveError when it runs longer than the step timeout (a paused call may
        hold a lock it needs); a psycopg2.Error for SQL the server refuses."""
        __tracebackhide__ = True
        timeout_ms = int(self._run.scheduler.step_timeout * 1000)
        with closing(connect(self._run.dsn, autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute("SET statement_timeout = %s", [timeout_ms])
            try:
                cur.execute(sql, params)
            except psycopg2.errors.QueryCanceled:
                raise InterleaveError(f"query() ran longer than the step timeout ({timeout_ms / 1000:g} s): "
                                      f"{self._paused_phrase()}") from None
            return cur.fetchall() if cur.description else []

    def start(self, session: str, function: Callable[..., Any], *args: Any, until: Point | None = None,
              **kwargs: Any) -> Call:
        """Call `function(conn, *args, **kwargs)` on `session`'s connection and thread, up to
        `until` (None: to its end). Returns at once if it waits for a lock; the Call follows it.
        A call still in flight on the session is waited for first. Raises InterleaveError for
        an unknown session, or one that waits for a paused call or whose call is paused; and,
        after the move, what `_raise_failures` raises: for this call or any other (a call that
        waited may finish during another session's move)."""
        __tracebackhide__ = True
        self._ready(session)
        latest = self._latest(session)
        if latest is not None and latest.state == "paused":
            raise InterleaveError(f"session {session} is paused in {latest.description} at {latest.paused_at}; "
                                  "resume it before starting another call there")
        call = Call(session, _described(function, args, kwargs), function, (args, kwargs),
                    _events=self._run.scheduler.events)
        self._calls.append(call)
        self._advance(call, until, call.description)
        return call

    def resume(self, session: str, *, until: Point | None = None) -> Call:
        """Let `session`'s paused call go on, up to `until` (None: to its end); a call still in
        flight is waited for first. Raises InterleaveError when the session has no paused call,
        or waits for a paused one; then as `start`."""
        __tracebackhide__ = True
        self._ready(session)
        call = self._latest(session)
        if call is None or call.state != "paused":
            state = "has run no call" if call is None else f"is not paused: {call.description} {_ended(call)}"
            raise InterleaveError(f"cannot resume session {session}: it {state}")
        self._advance(call, until, f"{call.description}, resumed")
        return call

    def sql(self, session: str, statement: str) -> StepResult | None:
        """Send one statement of the test's own on `session` (its connection, its transaction);
        its result (`error` set if the server refused it), or None while it waits for a lock."""
        __tracebackhide__ = True
        self._ready(session)
        self._steps += 1
        step = f"{session}-{self._steps}"
        self._run.scheduler.perform(session, step, statement)
        self._raise_failures()
        return self._run.scheduler.results.get(step)

    def finish(self) -> None:
        """Wait for every call in flight (a waiting one until its blocker ends). Raises
        InterleaveError at once when one waits for a paused call (see `start`)."""
        __tracebackhide__ = True
        for session in self.sessions:
            self._refuse_wait_on_paused(session)
        self._run.scheduler.finish()
        self._raise_failures()

    def end(self) -> None:
        """End every call still paused (see InterleavingEnded), each as a step of its session,
        since what its unwinding does (a rollback, say) may release another session, which may
        then reach its own point and pause: until none is paused. Then wait for every call in
        flight, and raise what `_raise_failures` raises."""
        __tracebackhide__ = True
        while (paused := next((c for c in self._calls if c.state == "paused"), None)) is not None:
            self._step(paused, f"{paused.description}: ended at {paused.paused_at}", paused.unwind)
        self.finish()

    def _ready(self, session: str) -> None:
        """Check the session exists and refuse to wait for a paused call; wait for the
        session's step in flight; raise what that wait brought (see `_raise_failures`)."""
        __tracebackhide__ = True
        if session not in self._run.scheduler.sessions:
            raise InterleaveError(f"no session {session!r}: this interleaving has {', '.join(self.sessions)}")
        self._refuse_wait_on_paused(session)
        self._run.scheduler.wait_for_session(session)
        self._raise_failures()

    def _latest(self, session: str) -> Call | None:
        return next((c for c in reversed(self._calls) if c.session == session), None)

    def _advance(self, call: Call, until: Point | None, description: str) -> None:
        __tracebackhide__ = True
        self._step(call, f"{description} until {until}" if until is not None else description,
                   partial(call.advance, until=until))
        self._raise_failures()

    def _step(self, call: Call, text: str, function: Callable[[Any], Any]) -> None:
        """Run `function(connection)` on the call's session as one timeline step."""
        self._steps += 1
        step = f"{call.session}-{self._steps}"
        call.steps.append(step)
        scheduler = self._run.scheduler
        scheduler.call(call.session, step, text, partial(scheduler.sessions[call.session].session.call, function))

    def _raise_failures(self) -> None:
        """After each move, what the test must hear of at once, whichever call it concerns, the
        first found of: a call that raised an exception that is not the server's answer (not a
        psycopg2.Error: a bug in the function, or in its cleanup when it was ended; raised
        again as it is, with a note naming the call); a call that returned without reaching
        its point (InterleaveError: the point is not in its statements, a typo usually); a run
        that ended early (InterleaveError). A psycopg2.Error is the server's answer: it stays
        on the Call for the test to assert on."""
        __tracebackhide__ = True
        for call in self._calls:
            if call._reported:
                continue
            if call.error is not None and not isinstance(call.error, psycopg2.Error):
                call._reported = True
                call.error.add_note(f"(raised by {call.description} on session {call.session}; txnlab_interleave)")
                raise call.error
            if call._missed is not None:
                call._reported = True
                sent = "; ".join(call.statements) or "no statement"
                raise InterleaveError(f"{call.description} returned without reaching {call._missed}; it sent: {sent}")
        if self._run.scheduler.ended_early:
            raise InterleaveError(f"the run ended early: {self._run.scheduler.ended_early}")

    def _refuse_wait_on_paused(self, session: str) -> None:
        """Going on with `session` would mean waiting for its step in flight; refuse when the
        server reports it waiting for a session whose call is paused, which cannot end until
        the test resumes it (whether the waiting step is a call or the test's own SQL)."""
        __tracebackhide__ = True
        paused = [s for s in self._run.scheduler.waiting_for(session)
                  if (latest := self._latest(s)) is not None and latest.state == "paused"]
        if paused:
            holder = self._latest(paused[0])
            assert holder is not None
            raise InterleaveError(f"session {session} is waiting for {' and '.join(paused)}, paused in "
                                  f"{holder.description}: resume {paused[0]} first")

    def _paused_phrase(self) -> str:
        paused = [f"{c.session} is paused in {c.description}" for c in self._calls if c.state == "paused"]
        return "; ".join(paused) + ", and may hold a lock it needs" if paused else "no call is paused"


def _described(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """`transfer(conn, 1, 2, amount=10)`: the call as the timeline shows it."""
    name = getattr(function, "__qualname__", None) or repr(function)
    shown = ["conn", *(_ARGUMENTS.repr(a) for a in args), *(f"{k}={_ARGUMENTS.repr(v)}" for k, v in kwargs.items())]
    return f"{name}({', '.join(shown)})"


def _ended(call: Call) -> str:
    if call.state == "running":
        return "(still running)"
    if call.state == "returned":
        return f"(it returned {_ARGUMENTS.repr(call.result)})"
    if call.state == "ended":
        return "(the interleaving ended it)"
    return f"(it raised {type(call.error).__name__})"


@contextmanager
def interleaving(run: DrivenRun) -> Iterator[Interleaving]:
    """An Interleaving over `run`; when the block ends, its calls are ended (Interleaving.end)
    before the run resets its sessions, also when the block raised (a test's failure or skip),
    so that paused functions still clean up; not after Ctrl-C or another signal, which ends
    the run at once (Lab.driving)."""
    moves = Interleaving(run)
    try:
        yield moves
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt) and signals.received() is None:  # a signal ends the run at once
            with suppress(Exception):  # the block's failure (a test's, a skip) is the one to report
                moves.end()
        raise
    moves.end()
