"""Stage 3 of the pipeline: what happened in a run, as a list of events.

The runner produces a `Timeline`; checks and renderers only read it. Everything
here is plain data that converts to JSON (see `to_dict`), and nothing here talks
to a database or formats output for a terminal.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from txnlab.levels import Level

JSON_SCHEMA_VERSION = 1


class Outcome(str, Enum):
    """How a step ended, as the timeline saw it."""

    OK = "ok"
    ERROR = "error"
    BLOCKED = "blocked"  # waiting for a lock (or a safe snapshot); a later event completes it
    TIMEOUT = "timeout"  # cancelled by txnlab after the step timeout
    SKIPPED = "skipped"  # never sent: it needs a value (${step.column}) an earlier step did not return
    ENDED = "ended"  # not a step: the server ended the session after its last step (error says why)


TRANSACTION_STATUS = {0: "idle", 1: "active", 2: "in transaction", 3: "in failed transaction", 4: "unknown"}


@dataclass(frozen=True)
class ErrorInfo:
    """A server error (with SQLSTATE) or a driver exception (SQLSTATE is None)."""

    exception: str  # e.g. psycopg2.errors.SerializationFailure
    message: str  # the primary message, one line
    sqlstate: str | None = None
    detail: str | None = None  # the server's DETAIL, HINT and CONTEXT fields, when it sent them
    hint: str | None = None
    context: str | None = None

    @property
    def deadlock_victim(self) -> bool:
        return self.sqlstate == "40P01"


@dataclass(frozen=True)
class LockWait:
    """What a blocked step waits for, read from pg_locks when the wait was detected."""

    locktype: str | None  # relation, transactionid, tuple, advisory... None for a safe-snapshot wait
    mode: str | None
    relation: str | None
    wait_started: float | None  # server clock, seconds since the epoch (pg_locks.waitstart)
    detected: float | None = None  # txnlab's clock (time.time()) when the monitor saw the wait


@dataclass(frozen=True)
class BackendView:
    """The server's view of a connection after a step (pg_stat_activity and pg_locks)."""

    label: str  # "this session", or "other connection (pid N)" for a pool's or an engine's
    state: str | None  # idle, idle in transaction, active, idle in transaction (aborted)
    xid: str | None  # the transaction id, once the transaction has written something
    locks: tuple[str, ...]  # e.g. "AccessShareLock on accounts", "SIReadLock on accounts (tuple)"


@dataclass(frozen=True)
class Event:
    """One line of the timeline: a step's result, its blocking, or its late completion."""

    seq: int
    session: str
    step: str
    sql: str
    outcome: Outcome
    started: float  # seconds since the run started, when the step was sent
    ended: float  # when the result arrived, or when the wait was detected
    after_wait: bool = False  # the completion of a step that was blocked earlier
    columns: tuple[str, ...] | None = None
    rows: tuple[tuple[Any, ...], ...] | None = None
    rowcount: int | None = None
    error: ErrorInfo | None = None
    transaction_status: str | None = None  # psycopg2's view of the connection afterwards
    blocked_by: tuple[str, ...] = ()
    lock: LockWait | None = None
    notices: tuple[str, ...] = ()
    sent: tuple[str, ...] = ()  # what the driver put on the wire, when it was captured
    server: tuple[BackendView, ...] = ()  # the server's view afterwards, when it was captured

    def transcript(self) -> tuple[Any, ...]:
        """Everything but the clock: two runs that behaved alike have equal transcripts."""
        return (
            self.session,
            self.step,
            self.sql,
            self.outcome.value,
            self.after_wait,
            self.columns,
            self.rows,
            self.rowcount,
            self.error.sqlstate if self.error else None,
            self.error.exception if self.error else None,
            self.transaction_status,
            self.blocked_by,
            self.notices,
            self.sent,
            tuple((v.label, v.state, v.locks) for v in self.server),
        )


@dataclass
class Timeline:
    """The record of one scenario run at one isolation level."""

    scenario: str
    level: Level
    sessions: tuple[str, ...]
    permutation: tuple[str, ...]
    server_version: str
    events: list[Event] = field(default_factory=list)
    invariants: dict[str, bool] = field(default_factory=dict)
    # The scenario's `final:` queries on the committed state after the run, one event each
    # (session "", step "final.N"), fetched and shown exactly as the steps' results are.
    final: list[Event] = field(default_factory=list)
    ended_early: str | None = None  # why the run stopped before its last step (a timeout)
    could_not_run: str | None = None  # why this server could not run it at all (a missing privilege...)
    duration: float = 0.0

    def step_events(self, step: str) -> list[Event]:
        return [e for e in self.events if e.step == step]

    def final_event(self, step: str) -> Event | None:
        """The event that settled a step: its result, or its completion after a wait."""
        events = [e for e in self.step_events(step) if e.outcome is not Outcome.BLOCKED]
        return events[-1] if events else None

    def was_blocked(self, step: str) -> bool:
        return any(e.outcome is Outcome.BLOCKED for e in self.step_events(step))

    def transcript(self) -> list[tuple[Any, ...]]:
        return [e.transcript() for e in self.events]


def plain(value: Any) -> Any:
    """A database value as JSON-friendly Python: numbers, text, booleans, None, lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.date, dt.time, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def event_to_dict(event: Event) -> dict[str, Any]:
    data = asdict(event)
    data["outcome"] = event.outcome.value
    data["rows"] = [list(r) for r in event.rows] if event.rows is not None else None
    data["columns"] = list(event.columns) if event.columns is not None else None
    data["blocked_by"] = list(event.blocked_by)
    data["notices"] = list(event.notices)
    data["sent"] = list(event.sent)
    data["server"] = [{**asdict(v), "locks": list(v.locks)} for v in event.server]
    if event.error:
        data["error"]["deadlock_victim"] = event.error.deadlock_victim
    return data


def timeline_to_dict(timeline: Timeline) -> dict[str, Any]:
    return {
        "scenario": timeline.scenario,
        "level": timeline.level.value,
        "sessions": list(timeline.sessions),
        "permutation": list(timeline.permutation),
        "server_version": timeline.server_version,
        "duration": round(timeline.duration, 6),
        "ended_early": timeline.ended_early,
        "could_not_run": timeline.could_not_run,
        "invariants": dict(timeline.invariants),
        "events": [event_to_dict(e) for e in timeline.events],
        "final": [event_to_dict(e) for e in timeline.final],
    }
