"""Interleave application functions: a test's own Python code, paused between its statements.

Each function runs on a session of a run (Lab.driving): on that session's thread and
psycopg2 connection, at the run's isolation level, with the scheduler's wait detection.
It runs inside a greenlet on the session's thread, so it can stop at a point between two of
its statements (`before`/`after` a statement, `commit()` or `rollback()`) and go on later,
while another session runs: the dangerous order of a race, replayed exactly, with no sleeps.

A function sees a connection that behaves as psycopg2's (attributes and methods are the
real connection's); the statements it sends through `cursor().execute`, `executemany`,
`callproc`, `commit()`, `rollback()` and `with conn:` are where it can pause.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from reprlib import Repr
from typing import Any, Literal

import psycopg2.errors
import psycopg2.extensions
import psycopg2.sql
from greenlet import greenlet

from txnlab import signals
from txnlab.errors import UsageError
from txnlab.runner.drivers.psycopg2 import end_transaction
from txnlab.runner.execute import StepResult
from txnlab.runner.lab import DrivenRun
from txnlab.server.connect import connect
from txnlab.timeline import Event, Outcome, Timeline

_PAUSED = object()  # what a function's greenlet hands back when it stops at its point
_ARGUMENTS = Repr()  # how a call's arguments are shown: short (Python 3.11's Repr takes no keywords)
_ARGUMENTS.maxstring = _ARGUMENTS.maxother = 30


class InterleaveError(UsageError):
    """A test asked the interleaving for something it cannot do (resume a function that is
    not paused, wait for one that is), a call missed its point, or the run ended early: one
    line, raised by the move that found it."""


class InterleavingEnded(BaseException):
    """Raised inside a function still paused when its interleaving ends, at its pause point,
    so that its `finally:` and `with` blocks run; its transaction is then rolled back. A
    BaseException, so that an application's `except Exception:` does not swallow it."""


@dataclass(frozen=True)
class Point:
    """Where a function pauses: just `when` ("before" or "after") the `nth` next statement
    it sends whose text starts with the words of `pattern` (case and runs of white space
    ignored; "UPDATE accounts" does not match "UPDATE accounts_log"), or in which a compiled
    regular expression `pattern` is found. `commit()` sends COMMIT,
    `rollback()` ROLLBACK."""

    when: Literal["before", "after"]
    pattern: str | re.Pattern[str]
    nth: int = 1

    def __post_init__(self) -> None:
        if self.nth < 1:
            raise InterleaveError(f"{self.when}(): nth counts statements from 1, not {self.nth}")
        if isinstance(self.pattern, str) and not self.pattern.strip():
            raise InterleaveError(f"{self.when}(): the statement to pause at is empty")

    def matches(self, statement: str) -> bool:
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.search(statement) is not None
        text, prefix = _words(statement), _words(self.pattern)
        following = text[len(prefix):len(prefix) + 1]
        # whole words: "UPDATE accounts" is not a prefix of "UPDATE accounts_log"
        return text.startswith(prefix) and not (_word_character(prefix[-1:]) and _word_character(following))

    def __str__(self) -> str:
        nth = f", nth={self.nth}" if self.nth > 1 else ""
        if isinstance(self.pattern, re.Pattern):
            text = self.pattern.pattern
            shown = f"re.compile(r'{text}')" if "'" not in text and not text.endswith("\\") else f"re.compile({text!r})"
            return f"{self.when}({shown}{nth})"
        return f"{self.when}({self.pattern!r}{nth})"


def before(pattern: str | re.Pattern[str], nth: int = 1) -> Point:
    """Pause just before the `nth` next statement that starts with `pattern` (see Point)."""
    return Point("before", pattern, nth)


def after(pattern: str | re.Pattern[str], nth: int = 1) -> Point:
    """Pause just after the `nth` next statement that starts with `pattern` returns (see Point)."""
    return Point("after", pattern, nth)


def _words(text: str) -> str:
    return " ".join(text.split()).casefold()


def _word_character(character: str) -> bool:
    return character.isalnum() or character == "_"


@dataclass(eq=False)
class Call:
    """One application function's call on a session, as the test follows it.

    `state` is "running" (sent, and blocked or still working), "paused" (at `paused_at`),
    "returned" (`result` holds its return value), "raised" (`error` holds the exception,
    a psycopg2.Error with its `pgcode` for the server's refusals) or "ended" (still paused
    when the interleaving ended: see InterleavingEnded). `statements` are the
    statements it sent, in order. `steps` are its timeline steps: one per start or resume."""

    session: str
    description: str
    function: Callable[..., Any]
    arguments: tuple[tuple[Any, ...], dict[str, Any]]
    state: Literal["running", "paused", "returned", "raised", "ended"] = "running"
    paused_at: Point | None = None
    result: Any = None
    error: BaseException | None = None
    statements: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    _events: list[Event] = field(default_factory=list, repr=False)  # the run's timeline, as it grows
    _greenlet: greenlet | None = field(default=None, repr=False)
    _connection: PausingConnection | None = field(default=None, repr=False)
    _until: Point | None = field(default=None, repr=False)
    _missed: Point | None = field(default=None, repr=False)  # the point it returned without reaching
    _reported: bool = field(default=False, repr=False)  # its failure has been raised to the test
    _seen: int = field(default=0, repr=False)  # statements matching _until so far

    @property
    def waited_for(self) -> tuple[str, ...]:
        """The sessions this call's statements waited for (a lock, a safe snapshot), in the
        order the server reported them; empty when it never waited."""
        blockers = (b for e in self._events if e.step in self.steps and e.outcome is Outcome.BLOCKED
                    for b in e.blocked_by)
        return tuple(dict.fromkeys(blockers))

    @property
    def waiting_for(self) -> tuple[str, ...]:
        """The sessions it waits for now (empty when it is not waiting)."""
        own = [e for e in self._events if e.step in self.steps[-1:]]
        return own[-1].blocked_by if own and own[-1].outcome is Outcome.BLOCKED else ()

    @property
    def waited(self) -> bool:
        """Whether any of its statements waited for another session."""
        return any(e.step in self.steps and e.outcome is Outcome.BLOCKED for e in self._events)

    # -- on the session's thread ----------------------------------------------------------

    def advance(self, conn: psycopg2.extensions.connection, until: Point | None) -> Any:
        """Run the function (or go on from its pause) until `until` or its end; the value it
        returned, None at a pause; what it raised is raised. A job for the session's thread."""
        self._until, self._seen, self.paused_at, self.state = until, 0, None, "running"
        if self._greenlet is None:
            self._connection = PausingConnection(conn, self)
            self._greenlet = greenlet(partial(self._body, self._connection))
        try:
            outcome = self._greenlet.switch()
        except BaseException as exc:
            self.state, self.error = "raised", exc
            raise
        if outcome is _PAUSED:
            self.state, self.paused_at = "paused", until
            return None
        self.state, self.result, self._missed = "returned", outcome, until
        return outcome

    def unwind(self, conn: psycopg2.extensions.connection) -> None:
        """Raise InterleavingEnded at the pause point (see there), then roll back what the
        function left open (paused inside `commit()`, it never reached its ROLLBACK); a job
        for the session's thread. Raises what the function's own cleanup raised on its way out."""
        assert self._greenlet is not None
        self.state, self.paused_at = "ended", None
        try:
            self._greenlet.throw(InterleavingEnded(f"the interleaving ended while {self.description} was paused"))
        except InterleavingEnded:
            pass
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            if self._connection is not None and self._connection.inside_with:  # paused at the block's end:
                conn.__exit__(InterleavingEnded, None, None)  # psycopg2 rolls back and leaves the block
            end_transaction(conn)

    def _body(self, conn: PausingConnection) -> Any:
        args, kwargs = self.arguments
        return self.function(conn, *args, **kwargs)

    def statement(self, text: str, send: Callable[[], Any]) -> Any:
        """Send one statement through `send`, pausing before or after it when it is the point.
        Read again after a pause before it: the resume may have set a new point, which counts
        this statement, the first the call sends after resuming."""
        if self._reaches("before", text):
            self._pause()
        self.statements.append(text)
        value = send()
        if self._reaches("after", text):
            self._pause()
        return value

    def _reaches(self, when: str, text: str) -> bool:
        point = self._until
        if point is None or point.when != when or not point.matches(text):
            return False
        self._seen += 1
        return self._seen == point.nth

    def _pause(self) -> None:
        self._until = None
        assert self._greenlet is not None and self._greenlet.parent is not None
        self._greenlet.parent.switch(_PAUSED)


class PausingCursor:
    """A psycopg2 cursor whose statements may pause their function (see Call.statement)."""

    def __init__(self, cursor: psycopg2.extensions.cursor, call: Call) -> None:
        self._cursor = cursor
        self._call = call

    def execute(self, query: Any, vars: Any = None) -> None:  # noqa: A002 - psycopg2's own parameter name
        self._call.statement(_text(query, self._cursor), partial(self._cursor.execute, query, vars))

    def executemany(self, query: Any, vars_list: Any) -> None:
        self._call.statement(_text(query, self._cursor), partial(self._cursor.executemany, query, vars_list))

    def callproc(self, procname: str, parameters: Any = None) -> Any:
        return self._call.statement(f"SELECT {procname}(...)", partial(self._cursor.callproc, procname, parameters))

    def __enter__(self) -> PausingCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cursor.close()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)

    def __next__(self) -> Any:
        return next(self._cursor)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class PausingConnection:
    """The session's psycopg2 connection as an application function sees it: everything is
    the real connection's, `with conn:` included (psycopg2's own: one transaction even on an
    autocommit connection, no re-entry, the connection stays open), but statements,
    `commit()`, `rollback()` and the end of a `with` block are points the function may pause at."""

    def __init__(self, conn: psycopg2.extensions.connection, call: Call) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_call", call)
        object.__setattr__(self, "inside_with", False)  # in a `with conn:` block psycopg2 has not ended

    def cursor(self, *args: Any, **kwargs: Any) -> PausingCursor:
        return PausingCursor(self._conn.cursor(*args, **kwargs), self._call)

    def commit(self) -> None:
        self._end_transaction("COMMIT", self._conn.commit)

    def rollback(self) -> None:
        self._end_transaction("ROLLBACK", self._conn.rollback)

    def __enter__(self) -> PausingConnection:
        self._conn.__enter__()
        object.__setattr__(self, "inside_with", True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        def leave() -> None:
            self._conn.__exit__(exc_type, exc, tb)
            object.__setattr__(self, "inside_with", False)  # before an after-point: the block is left

        self._end_transaction("COMMIT" if exc_type is None else "ROLLBACK", leave)

    def _end_transaction(self, command: str, send: Callable[[], Any]) -> None:
        """COMMIT or ROLLBACK through psycopg2, a statement (and a point) only when psycopg2
        sends one: while a transaction it began is open (psycopg/pqpath.c, pq_commit and
        pq_abort_locked; see runner.drivers.psycopg2._end_transaction). Otherwise nothing
        reaches the server, and nothing is recorded as sent."""
        if self._conn.status == psycopg2.extensions.STATUS_BEGIN:
            self._call.statement(command, send)
        else:
            send()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)  # autocommit, isolation_level...


def _text(query: Any, cursor: psycopg2.extensions.cursor) -> str:
    """A statement's text as the application wrote it (a psycopg2.sql object composed), parameters unbound."""
    if isinstance(query, psycopg2.sql.Composable):
        return query.as_string(cursor)
    return query.decode() if isinstance(query, bytes) else str(query)


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
