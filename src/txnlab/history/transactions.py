"""A run's transactions, cut from each session's settled events, and the owner of every
logged write (its transaction and its step).

A session's transaction starts with the first step sent while none is open and ends with
the first step after which the connection is idle (libpq's PQtransactionStatus, as psycopg2
reports it after each step): the server answered COMMIT -> committed, ROLLBACK -> aborted;
an autocommit statement is its own transaction, committed unless it failed. A transaction
still open when the run ended is "unfinished" (txnlab rolled it back).

A write is its session's by pid (HistoryCapture.session_pids) and its transaction's by xid.
Which of the session's committed transactions had that xid is decided by facts only: the
server's view of the session (BackendView.xid, when it was captured) names it exactly; else a
transaction can own the xid's writes only if, for every statement that wrote them, it ran a
step with the same text (current_query()) that succeeded, was not undone by ROLLBACK TO
SAVEPOINT, and whose row count agrees with the rows the statement logged; and the session's
transactions run one after another, so the xids (in log order) go to them in order. When
more than one transaction could still own the writes, or no order fits the facts, none gets them: they go to a
transaction named for the backend ("pid 812#2") and a gap says so -- never a false edge. A
write by a connection that is no session's (a pool's, an engine's) belongs to a transaction
named for that backend, "pid 812".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

from txnlab.history import statements
from txnlab.history.model import HistoryCapture, LoggedWrite, Transaction, TransactionOutcome
from txnlab.timeline import Event, Outcome, Timeline

SETTLED = (Outcome.OK, Outcome.ERROR, Outcome.TIMEOUT, Outcome.ENDED)
WRITING = ("INSERT", "UPDATE", "DELETE", "MERGE")  # command statuses that count the rows written


@dataclass
class Span:
    """One transaction and the settled events that made it (in order); `end` is the event
    that ended it (its COMMIT, ROLLBACK or autocommit statement), None when it never ended
    or was not a session's (a "pid N" transaction)."""

    transaction: Transaction
    events: list[Event] = field(default_factory=list)
    end: Event | None = None

    @property
    def id(self) -> str:
        return self.transaction.id

    @property
    def committed(self) -> bool:
        return self.transaction.outcome == "committed"


@dataclass
class Owners:
    """What transactions.py derives: every transaction's span, in the order they began, and
    for each LoggedWrite.seq the transaction id and step (None: not found) that wrote it."""

    spans: tuple[Span, ...]
    writes: dict[int, tuple[str, str | None]]
    gaps: tuple[str, ...] = ()

    def span(self, transaction: str) -> Span:
        return next(s for s in self.spans if s.id == transaction)

    def of_event(self, seq: int) -> Span | None:
        """The transaction an event (by Event.seq) ran in."""
        return self.by_event.get(seq)

    @cached_property
    def by_event(self) -> dict[int, Span]:
        return {e.seq: s for s in self.spans for e in s.events}


def owners(timeline: Timeline, capture: HistoryCapture) -> Owners:
    """Cut the timeline into transactions and give every logged write its owner (see module
    docstring). Pure: reads the timeline and the capture only."""
    spans = [span for session in timeline.sessions for span in _session_spans(timeline, session)]
    spans.sort(key=lambda s: s.events[0].seq)
    pids = dict(capture.session_pids)
    by_pid: dict[int, list[LoggedWrite]] = defaultdict(list)
    for write in capture.writes:
        by_pid[write.pid].append(write)
    written: dict[int, tuple[str, str | None]] = {}
    gaps: list[str] = []
    session_of = {pid: name for name, pid in pids.items()}
    for pid, writes in by_pid.items():
        session = session_of.get(pid)
        mine = [s for s in spans if s.transaction.session == session and s.committed] if session else []
        groups = _by_xid(writes)
        able = [_owners(mine, xid, group) for xid, group in groups.items()]
        narrowed = _in_order(mine, able)
        for number, ((xid, group), could) in enumerate(zip(groups.items(), narrowed or able), start=1):
            span = could[0] if narrowed is not None and len(could) == 1 else None
            if span is None:
                name = f"pid {pid}" if number == 1 else f"pid {pid}#{number}"
                span = Span(Transaction(name, session or f"pid {pid}", (), "committed", xid))
                spans.append(span)
                if session and could:
                    gaps.append(f"{name}: session {session}'s transaction {xid} wrote with statements that"
                                f" {', '.join(s.id for s in could)} ran: its writes are credited to none of them")
                elif session:
                    gaps.append(f"{name}: session {session}'s transaction {xid} wrote in no step txnlab saw commit")
            else:
                span.transaction = Transaction(span.id, span.transaction.session, span.transaction.steps,
                                               span.transaction.outcome, xid)
            for write, step in _steps(effective(span.events), group).items():
                written[write] = (span.id, step)
    return Owners(tuple(spans), written, tuple(gaps))


def _session_spans(timeline: Timeline, session: str) -> list[Span]:
    """A session's transactions (see module docstring)."""
    spans: list[Span] = []
    current: Span | None = None
    for event in timeline.events:
        if event.session != session or event.outcome not in SETTLED:
            continue
        if current is None:
            if event.driver_sent_nothing or event.outcome is Outcome.ENDED:
                continue
            number = len(spans) + 1
            name = session if number == 1 else f"{session}#{number}"
            current = Span(Transaction(name, session, (), "unfinished"))
            spans.append(current)
        current.events.append(event)
        if event.transaction_status == "idle" or event.outcome is Outcome.ENDED:
            current.end = event
            current.transaction = _with(current, _outcome(event))
            current = None
    if current is not None:
        current.transaction = _with(current, "unfinished")
    return spans


def _outcome(event: Event) -> TransactionOutcome:
    """How the event that left the connection idle ended its transaction."""
    if event.status == "ROLLBACK" or event.outcome is not Outcome.OK:
        return "aborted"
    return "committed"


def _with(span: Span, outcome: TransactionOutcome) -> Transaction:
    steps = tuple(dict.fromkeys(e.step for e in span.events))
    return Transaction(span.id, span.transaction.session, steps, outcome, span.transaction.xid)


def _by_xid(writes: list[LoggedWrite]) -> dict[str, list[LoggedWrite]]:
    groups: dict[str, list[LoggedWrite]] = {}
    for write in writes:
        groups.setdefault(write.xid, []).append(write)
    return groups


def _owners(candidates: list[Span], xid: str, group: list[LoggedWrite]) -> list[Span]:
    """The committed spans of the session that could have written the xid's group (module
    docstring): the one the server's view names, else every span able to run all its
    statements; a Python step (whose SQL the timeline does not show) can run any."""
    named = [s for s in candidates if any(v.label == "this session" and v.xid == xid for e in s.events
                                          for v in e.server or ())]
    if named:
        return named[:1]
    by_statement: dict[int, list[LoggedWrite]] = {}
    for write in group:
        by_statement.setdefault(write.statement, []).append(write)
    able = []
    for span in candidates:
        events = effective(span.events)
        if all(any(_could_write(e, rows) for e in events) for rows in by_statement.values()):
            able.append(span)
    return able


def _in_order(spans: list[Span], able: list[list[Span]]) -> list[list[Span]] | None:
    """Narrow each xid group's able spans (groups in log order) to those some one-to-one
    assignment in order allows: a session's transactions run one after another, so its
    later xid belongs to a later transaction. Groups no span can own do not take part. When
    no assignment in order exists at all, the facts contradict each other: None."""
    at = {id(s): i for i, s in enumerate(spans)}
    indexes = [sorted(at[id(s)] for s in group) for group in able]
    taking = [i for i, group in enumerate(indexes) if group]
    earliest: dict[int, int] = {}
    previous = -1
    for i in taking:
        previous = next((s for s in indexes[i] if s > previous), len(spans))
        earliest[i] = previous
    latest: dict[int, int] = {}
    following = len(spans)
    for i in reversed(taking):
        following = next((s for s in reversed(indexes[i]) if s < following), -1)
        latest[i] = following
    if taking and earliest[taking[-1]] >= len(spans):
        return None
    narrowed: list[list[Span]] = []
    before, after = -1, {i: (latest[taking[n + 1]] if n + 1 < len(taking) else len(spans))
                         for n, i in enumerate(taking)}
    for i, group in enumerate(indexes):
        if not group:
            narrowed.append([])
            continue
        narrowed.append([spans[s] for s in group if before < s < after[i]])
        before = earliest[i]
    return narrowed


def _could_write(event: Event, rows: list[LoggedWrite]) -> bool:
    """Whether the event could be the statement that logged `rows`: a Python step can be
    anything; else the same text, and when its command status counts rows it wrote (INSERT,
    UPDATE, DELETE, MERGE), at least one and no more than it logged (a trigger's writes of
    other tables are logged under the same statement)."""
    if event.status is None:
        return True
    if _text(event.sql) != _text(rows[0].query):
        return False
    if event.status.split()[0] in WRITING and event.rowcount is not None:
        return 1 <= event.rowcount <= len(rows)
    return True


def effective(events: list[Event]) -> list[Event]:
    """The span's events that succeeded and were not undone by ROLLBACK TO SAVEPOINT (in
    order): only they can have left a logged write."""
    undone: set[int] = set()
    marks: list[tuple[str, int]] = []  # open savepoints: name, index of the SAVEPOINT event
    for index, event in enumerate(events):
        if event.outcome is not Outcome.OK:
            continue
        kind, name = statements.savepoint(event.sql)
        if kind == "SAVEPOINT":
            marks.append((name, index))
        elif kind in ("RELEASE", "ROLLBACK TO") and any(n == name for n, _ in marks):
            at = max(i for i, (n, _) in enumerate(marks) if n == name)
            if kind == "ROLLBACK TO":
                undone.update(range(marks[at][1] + 1, index))
                del marks[at + 1:]
            else:
                del marks[at:]
    return [e for i, e in enumerate(events) if e.outcome is Outcome.OK and i not in undone]


def _steps(events: list[Event], group: list[LoggedWrite]) -> dict[int, str | None]:
    """Each write's step: the group's statements in order, each matched to the next event of
    the span with the same text, preferring one whose row count equals the rows it wrote."""
    statements: dict[int, list[LoggedWrite]] = {}
    for write in group:
        statements.setdefault(write.statement, []).append(write)
    steps: dict[int, str | None] = {}
    position = 0
    for rows in statements.values():
        text = _text(rows[0].query)
        later = [i for i in range(position, len(events)) if _text(events[i].sql) == text]
        exact = [i for i in later if events[i].rowcount == len(rows)]
        chosen = (exact or later or [None])[0]
        if chosen is not None:
            position = chosen + 1
        for write in rows:
            steps[write.seq] = events[chosen].step if chosen is not None else None
    return steps


def _text(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";")
