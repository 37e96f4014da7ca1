"""Stage 3 of the pipeline: what happened in a run, as a list of events.

The runner produces a `Timeline`; checks and renderers only read it. Everything
here is plain data that converts to JSON (see `timeline_to_dict`), and nothing here talks
to a database or formats output for a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from txnlab.history.model import HistoryCapture
from txnlab.levels import Level
from txnlab.sql_spacing import collapse_layout
from txnlab.values import json_cell

# 2: a row's values are the server's text (JSON strings), except integers, booleans and NULL,
# and each event says its columns' types (`column_types`); 1 carried floats, ISO dates, seconds, hex.
JSON_SCHEMA_VERSION = 2


class Outcome(str, Enum):
    """How a step ended, as the timeline saw it."""

    OK = "ok"
    ERROR = "error"
    BLOCKED = "blocked"  # waiting for a lock (or a safe snapshot); a later event completes it
    TIMEOUT = "timeout"  # cancelled by txnlab after the step timeout
    SKIPPED = "skipped"  # never sent: it needs a value (${step.column}) an earlier step did not return
    ENDED = "ended"  # not a step: the server ended the session after its last step (error says why)
    # Not a step's end: notices a session's connection delivered while its step still waits
    # (a `.spec` run reads them when isolationtester would; see runner/isolationtester.py).
    NOTICE = "notice"


TRANSACTION_STATUS = {0: "idle", 1: "active", 2: "in transaction", 3: "in failed transaction", 4: "unknown"}

# Statements that end a transaction by committing it; in a failed transaction the server
# rolls back instead and answers ROLLBACK (https://www.postgresql.org/docs/current/sql-commit.html).
COMMITTING = re.compile(r"^\s*(COMMIT|END|PREPARE\s+TRANSACTION)\b", re.I)
# How the server's texts name a backend: "Process 812 waits for ShareLock on transaction 771;
# blocked by process 815." (the deadlock DETAIL, src/backend/storage/lmgr/deadlock.c).
# asyncpg names a savepoint from a counter shared by the whole process (asyncpg/connection.py,
# Connection._get_unique_id): its number tells what ran before in the process, not about the run.
ASYNCPG_SAVEPOINT = re.compile(r"__asyncpg_savepoint_[0-9a-f]+__")


def wire_text(message: str) -> str:
    """A message a driver sent, as runs are compared: runs of whitespace between tokens as one
    space (see sql_spacing.collapse_layout: never inside a literal, a quoted identifier or a
    comment), and asyncpg's savepoint names as `__asyncpg_savepoint_N__` whatever their number."""
    return ASYNCPG_SAVEPOINT.sub("__asyncpg_savepoint_N__", collapse_layout(message))


BACKEND_PID = re.compile(r"\b([Pp])rocess (\d+)\b")


@dataclass(frozen=True)
class ErrorInfo:
    """A server error (with SQLSTATE) or a driver exception (SQLSTATE is None)."""

    exception: str  # e.g. psycopg2.errors.SerializationFailure
    message: str  # the primary message, one line
    sqlstate: str | None = None
    detail: str | None = None  # the server's DETAIL, HINT and CONTEXT fields, when it sent them
    hint: str | None = None
    context: str | None = None
    # The backends its texts name ("Process 812 waits for ShareLock..."), as (pid, who):
    # "session a", or the label of a pool's or an engine's connection. The texts stay as sent.
    backends: tuple[tuple[int, str], ...] = ()
    # A `.spec` run's libpq errors: the severity the server sent (ERROR, FATAL...; None for an
    # error libpq made itself) and the whole message as libpq formats it (PQresultErrorMessage).
    severity: str | None = None
    libpq_message: str | None = None

    def texts(self) -> tuple[str | None, ...]:
        """The primary message, DETAIL, HINT and CONTEXT, in that order (None: not sent)."""
        return (self.message, self.detail, self.hint, self.context)

    @property
    def deadlock_victim(self) -> bool:
        return self.sqlstate == "40P01"


@dataclass(frozen=True)
class LockWait:
    """What a blocked step waits for, read from pg_locks when the wait was detected.

    The fields are pg_locks' own (see PostgreSQL's docs, "pg_locks"). For a wait on a
    transaction id that is a row wait (the waiter holds the row's tuple lock, as every
    first waiter for a row does), `relation`, `relkind`, `page` and `tuple` name that row.
    JSON: the keys after `detected` were added in schema_version 2.
    """

    locktype: str | None  # relation, transactionid, tuple, advisory... None for a safe-snapshot wait
    mode: str | None
    relation: str | None
    wait_started: float | None  # server clock, seconds since the epoch (pg_locks.waitstart)
    detected: float | None = None  # txnlab's clock (time.time()) when the monitor saw the wait
    relkind: str | None = None  # pg_class.relkind of `relation`: r table, i index, S sequence, m matview...
    page: int | None = None  # page of a page or tuple lock, or of the row a transaction id wait is for
    tuple: int | None = None  # line pointer of that row in its page
    key: str | None = None  # an advisory lock's key ("42", or "(1, 2)" for two int4 keys); an object lock's object

    @property
    def what(self) -> tuple[Any, ...]:
        """The lock without its clocks: equal for two reads of the same wait (one run's, or
        two runs' that waited alike)."""
        return (self.locktype, self.mode, self.relation, self.relkind, self.page, self.tuple, self.key)


@dataclass(frozen=True)
class ResultSet:
    """One result of a step that sent several statements in one query string (libpq's
    PQexec/PQsendQuery return one result per statement, in order; psycopg2 keeps only the
    last). `columns` is None for a command that returns no rows (its `status` says what it did)."""

    columns: tuple[str, ...] | None
    column_types: tuple[str, ...] | None
    rows: tuple[tuple[Any, ...], ...] | None  # the server's text, None for NULL
    status: str | None  # the command status: SELECT 2, INSERT 0 1, BEGIN...
    rowcount: int | None = None
    # Notices libpq read after the step's previous result and before this one (a `.spec` run;
    # isolationtester prints them between the two result sets).
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Notification:
    """A NOTIFY a session received (PostgreSQL's docs, "NOTIFY"): the channel, the payload
    (empty when none was given), and who sent it: a session's name, or "PID n" when the
    sender is not a session of the run (isolationtester's wording)."""

    channel: str
    payload: str
    sender: str


# The label of a session's own connection among an event's server views (BackendView.label).
OWN_CONNECTION = "this session"


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
    # When the result arrived, or when the wait (or its change) was detected. A completion
    # after a wait is never earlier than the latest event of a session it waited for: each
    # session's thread reads the clock when its answer arrives, and thread scheduling can
    # invert two readings that are microseconds apart.
    ended: float
    after_wait: bool = False  # the completion of a step that was blocked earlier
    columns: tuple[str, ...] | None = None
    rows: tuple[tuple[Any, ...], ...] | None = None  # the server's text, None for NULL (see txnlab.values)
    rowcount: int | None = None
    error: ErrorInfo | None = None
    transaction_status: str | None = None  # the server's view afterwards (libpq's, from its last ReadyForQuery)
    # The command status the server answered (INSERT 0 1, COMMIT, ROLLBACK...): None when
    # it answered none (an error, a step not sent, a Python step) or nothing was sent.
    status: str | None = None
    # A COMMIT or ROLLBACK in a psycopg2-style session with no transaction open: psycopg2
    # sends nothing then, so the server answered nothing.
    driver_sent_nothing: bool = False
    blocked_by: tuple[str, ...] = ()
    lock: LockWait | None = None
    wait_changed: bool = False  # a BLOCKED event for a step already waiting: its blockers or lock changed
    notices: tuple[str, ...] = ()
    # The locks the session holds right after this step (sorted, in the capture view's words),
    # read only when a `holds:` expectation names the step; None otherwise. JSON: added in
    # schema_version 2, like `wait_changed` and the lock's new keys.
    holds: tuple[str, ...] | None = None
    # What the driver put on the wire, when it was captured (`capture: true`, through the wire
    # tap): () for a captured step that truly sent nothing, None when nothing was recorded.
    sent: tuple[str, ...] | None = None
    # The server's view afterwards, when it was captured (a capture or a watched connection);
    # None when it was not read.
    server: tuple[BackendView, ...] | None = None
    column_types: tuple[str, ...] | None = None  # format_type of each column; "Python" for a Python step's result
    # Every result of the step, in order, when the session's driver returns them all (a
    # `.spec` run's libpq sessions); then `columns`, `rows`, `status` and `rowcount` above
    # are the last result's. Empty for psycopg2 sessions, which keep only the last.
    # JSON: added in schema_version 2, like `notifications`.
    results: tuple[ResultSet, ...] = ()
    notifications: tuple[Notification, ...] = ()  # NOTIFY messages the session received with this result
    # Where each result column came from, as the protocol's RowDescription says: (table oid,
    # attnum), (0, 0) for a column that is not a table's (an expression). For the history stage
    # (history/reads.py) only: oids differ from run to run, so it is in neither the transcript nor JSON.
    column_origins: tuple[tuple[int, int], ...] | None = None
    # The driver's own answer to "am I in a transaction?" afterwards, in its terms
    # (psycopg2 TRANSACTION_STATUS_INTRANS, psycopg 3 TransactionStatus.INTRANS, asyncpg
    # is_in_transaction() = True), beside the server's `transaction_status`; None for a
    # step no driver session ran (a `.spec` run's libpq sessions, `final:` queries).
    driver_status: str | None = None
    # A Python step (run.call, or run.step with a function): `sql` is its code as the scenario
    # describes it, shown with its lines and indentation (render.fit.code_lines), not reflowed.
    python: bool = False

    def result_sets(self) -> tuple[ResultSet, ...]:
        """Every result the step returned, in order: `results`, or the one result the
        event's own fields describe (none for a step that returned nothing)."""
        if self.results:
            return self.results
        if self.columns is None and self.status is None:
            return ()
        return (ResultSet(self.columns, self.column_types, self.rows, self.status, self.rowcount),)

    @property
    def rolled_back(self) -> bool:
        """A COMMIT (END, PREPARE TRANSACTION) that the server answered ROLLBACK: the
        transaction had failed, so nothing was committed."""
        return self.status == "ROLLBACK" and COMMITTING.match(self.sql) is not None

    def transcript(self) -> tuple[Any, ...]:
        """Everything but the clock: two runs that behaved alike have equal transcripts."""
        return (
            self.session,
            self.step,
            self.sql,
            self.outcome.value,
            self.after_wait,
            self.columns,
            self.column_types,
            self.rows,
            self.rowcount,
            self.error.sqlstate if self.error else None,
            self.error.exception if self.error else None,
            self.transaction_status,
            self.status,
            self.driver_sent_nothing,
            self.blocked_by,
            self.lock.what if self.lock else None,
            self.wait_changed,
            self.notices,
            self.holds,
            None if self.sent is None else tuple(wire_text(message) for message in self.sent),
            None if self.server is None else tuple((v.label, v.state, v.locks) for v in self.server),
            self.results,
            self.notifications,
            self.driver_status,  # last: tests index the fields before it
        )


# Timeline.ended_early of a `.spec` run whose setup SQL failed: no step ran (isolationtester stops there).
SETUP_FAILED = "setup failed"
# Timeline.ended_early of a `.spec` run that sent a step or a session's setup to a session whose
# connection the server had closed (isolationtester stops there too: "failed to send query").
SESSION_LOST = "session lost"
# The ways a `.spec` run stops early as isolationtester stops: said as they are, never "timed out".
SPEC_STOPS = frozenset({SETUP_FAILED, SESSION_LOST})


@dataclass
class Timeline:
    """The record of one scenario run at one isolation level."""

    scenario: str
    level: Level
    sessions: tuple[str, ...]
    permutation: tuple[str, ...]
    server_version: str
    # Each session's driver and its version: {"app": ("psycopg", "3.3.9")}; empty for a
    # `.spec` run (its sessions are libpq's own) and for timelines read from older JSON.
    drivers: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    invariants: dict[str, bool] = field(default_factory=dict)
    # The scenario's `final:` queries on the committed state after the run, one event each
    # (session "", step "final.N"), fetched and shown exactly as the steps' results are.
    final: list[Event] = field(default_factory=list)
    # A `.spec` run's setup and teardown SQL, one event each, in the order isolationtester
    # runs them: the spec's setup blocks (session "", the control connection), then each
    # session's setup (step "session.NAME.setup.0"); at the end each session's teardown,
    # then the spec's teardown (steps named as Scenario.lines names them).
    setup: list[Event] = field(default_factory=list)
    teardown: list[Event] = field(default_factory=list)
    ended_early: str | None = None  # why the run stopped before its last step (a timeout)
    could_not_run: str | None = None  # why this server could not run it at all (a missing privilege...)
    # What each committed transaction wrote and what the setup left (history/capture.py); None
    # when the history was not recorded (`--no-history`, a `.spec` run, a run that could not run).
    history: HistoryCapture | None = None
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


def event_to_dict(event: Event) -> dict[str, Any]:
    """One event as JSON data; row values as `txnlab.values.json_cell` writes them."""
    data = asdict(event)
    data["outcome"] = event.outcome.value
    data.update(_result_set_to_dict(ResultSet(event.columns, event.column_types, event.rows, None)))
    data["results"] = [{**_result_set_to_dict(r), "status": r.status, "rowcount": r.rowcount,
                        "notices": list(r.notices)} for r in event.results]
    data["notifications"] = [asdict(n) for n in event.notifications]
    del data["column_origins"]  # oids of one run's tables: the run's `history` names what was read
    data["blocked_by"] = list(event.blocked_by)
    data["notices"] = list(event.notices)
    data["holds"] = list(event.holds) if event.holds is not None else None
    data["sent"] = list(event.sent) if event.sent is not None else None  # null: not captured, not "nothing"
    data["server"] = [{**asdict(v), "locks": list(v.locks)} for v in event.server] if event.server is not None else None
    # Which connection transaction_status and driver_status describe: always the session's
    # own, even when a Python step worked on another (a pool's, an engine's), whose server
    # view is then the `server` entry labelled "other connection". A label of `server`.
    data["status_of"] = OWN_CONNECTION if event.transaction_status or event.driver_status else None
    if event.error:
        data["error"]["deadlock_victim"] = event.error.deadlock_victim
        data["error"]["backends"] = {str(pid): who for pid, who in event.error.backends}
    return data


def _result_set_to_dict(result: ResultSet) -> dict[str, Any]:
    """A result's columns, their types and its rows as JSON data (`json_cell` per value)."""
    types = result.column_types or ()
    return {
        "columns": list(result.columns) if result.columns is not None else None,
        "column_types": list(result.column_types) if result.column_types is not None else None,
        "rows": [[json_cell(v, t) for v, t in zip(row, types, strict=True)] for row in result.rows]
        if result.rows is not None else None,
    }


def drivers_to_dict(timeline: Timeline) -> dict[str, dict[str, str]]:
    """Which Python driver each session spoke through, as JSON data: session name to
    `{"driver": "psycopg", "version": "3.3.2"}` (run and matrix JSON alike; empty for a
    `.spec` run, whose sessions are libpq's own)."""
    return {session: {"driver": name, "version": version} for session, (name, version) in timeline.drivers.items()}


def timeline_to_dict(timeline: Timeline) -> dict[str, Any]:
    return {
        "scenario": timeline.scenario,
        "level": timeline.level.value,
        "sessions": list(timeline.sessions),
        "permutation": list(timeline.permutation),
        "server_version": timeline.server_version,
        "drivers": drivers_to_dict(timeline),
        "duration": round(timeline.duration, 6),
        "ended_early": timeline.ended_early,
        "could_not_run": timeline.could_not_run,
        "invariants": dict(timeline.invariants),
        "events": [event_to_dict(e) for e in timeline.events],
        "final": [event_to_dict(e) for e in timeline.final],
        "setup": [event_to_dict(e) for e in timeline.setup],
        "teardown": [event_to_dict(e) for e in timeline.teardown],
    }
