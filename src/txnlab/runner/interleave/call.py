"""One application function's call, run pausable: in a greenlet on its session's thread, with a
psycopg2 connection whose statements are the points it may pause at (see points.py).

A pause switches back to the session's thread, so the session's step ends while the function
stays suspended inside its transaction, holding its locks; the next step switches back in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import psycopg2.extensions
import psycopg2.sql
from greenlet import greenlet

from txnlab.runner.drivers.psycopg2 import end_transaction, sends_end
from txnlab.runner.interleave.points import Point
from txnlab.timeline import Event, Outcome

_PAUSED = object()  # what a function's greenlet hands back when it stops at its point


class InterleavingEnded(BaseException):
    """Raised inside a function still paused when its interleaving ends, at its pause point,
    so that its `finally:` and `with` blocks run; its transaction is then rolled back. A
    BaseException, so that an application's `except Exception:` does not swallow it."""


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
        sends one (runner.drivers.psycopg2.sends_end). Otherwise nothing reaches the server,
        and nothing is recorded as sent."""
        if sends_end(self._conn):
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
