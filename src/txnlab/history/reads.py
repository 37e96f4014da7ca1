"""The versions of every object, what each read's snapshot could see, and the reads
themselves, matched to versions.

Versions: the setup's version 0 of every row it left, then one per logged write in seq order
(PostgreSQL lets one transaction at a time write a row, so seq order is version order); a
DELETE, or an UPDATE that moves a row to another key, installs a deleted version (row None).

Snapshots (PostgreSQL's docs, 13.2 "Transaction Isolation"): at READ COMMITTED each statement
sees what was committed before it began; a statement that waited for a row lock sees the
latest committed version of that row after its wait (13.2.1), and the derivation assumes so
for every row such a statement returned (a row it did not wait for may then match no
version: unmatched, never an edge). At REPEATABLE READ and SERIALIZABLE every statement sees
what was committed before the transaction's first statement (a DEFERRABLE one's: after its
wait for a safe snapshot). A transaction always sees its own earlier writes. The run's clock
only brackets when a snapshot was taken (between a step's `started` and `ended`) and when a
commit happened (its COMMIT's `started` and `ended`): when the two brackets overlap, both
versions stay candidates and the read is ambiguous. Intermediate versions (a transaction's
writes of an object before its last) are never visible to another transaction: PostgreSQL
never shows uncommitted data.

Reads: only rows of statements whose command status is SELECT (SELECT, SELECT ... FOR
UPDATE, a function call); a column is read from the table its RowDescription origin names.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from txnlab.history.model import HistoryCapture, Key, PredicateRead, PredicateTest, Read, Row, TableInfo, VersionRef
from txnlab.history.transactions import Owners, Span
from txnlab.levels import Level
from txnlab.timeline import Event, Outcome, Timeline
from txnlab.values import PYTHON

# Statements that take no snapshot of their own (the snapshot of REPEATABLE READ is the first other's).
NO_SNAPSHOT = re.compile(r"^\s*(BEGIN|START|SET|SAVEPOINT|RELEASE|COMMIT|END|ROLLBACK|SHOW)\b", re.I)
EXPLICIT_LEVEL = re.compile(r"ISOLATION\s+LEVEL\s+(READ\s+UNCOMMITTED|READ\s+COMMITTED|REPEATABLE\s+READ|SERIALIZABLE)",
                            re.I)
Window = tuple[float, float]  # seconds since the run started: the moment lies between the two


def versions(capture: HistoryCapture, owners: Owners) -> tuple[VersionRef, ...]:
    """Every version of every object of a tracked table, by object then number."""
    chains: dict[tuple[str, Key], list[VersionRef]] = {}
    for table, row in capture.initial:
        info = capture.table(table)
        if info is not None and info.tracked:
            key = info.key_of(row)
            chains[(table, key)] = [VersionRef(table, key, 0, row, None, None)]
    for write in capture.writes:
        info = capture.table(write.table)
        if info is None or not info.tracked:
            continue
        writer, step = owners.writes.get(write.seq, (None, None))
        before = info.key_of(write.before) if write.before is not None else None
        after = info.key_of(write.after) if write.after is not None else None
        if before is not None and before != after:
            _install(chains, write.table, before, None, writer, step, write.seq)
        if after is not None:
            _install(chains, write.table, after, write.after, writer, step, write.seq)
    return tuple(v for chain in sorted(chains.items(), key=lambda kv: (kv[0][0], _sortable(kv[0][1])))
                 for v in chain[1])


def _install(chains: dict[tuple[str, Key], list[VersionRef]], table: str, key: Key, row: Row | None,
             writer: str | None, step: str | None, seq: int) -> None:
    chain = chains.setdefault((table, key), [VersionRef(table, key, 0, None, None, None)])
    chain.append(VersionRef(table, key, len(chain), row, writer, step, seq))


def _sortable(key: Key) -> tuple[tuple[int, float, str], ...]:
    """Keys in numeric order where they are numbers (accounts[2] before accounts[10])."""
    def one(value: str | None) -> tuple[int, float, str]:
        try:
            return (0, float(value), "") if value is not None else (2, 0.0, "")
        except ValueError:
            return (1, 0.0, value)
    return tuple(one(v) for v in key)


class Snapshots:
    """Which versions of an object a statement's snapshot could see (module docstring)."""

    def __init__(self, timeline: Timeline, owners: Owners, all_versions: Iterable[VersionRef],
                 levels: Mapping[str, Level] | None = None) -> None:
        self.timeline = timeline
        self.levels = levels or {}
        self._windows: dict[int, Window] = {}
        self.owners = owners
        self.chains: dict[tuple[str, Key], list[VersionRef]] = defaultdict(list)
        for version in all_versions:
            self.chains[(version.table, version.key)].append(version)
        # When each step that ran wrote (the Event.seq of its result), to order a transaction's own writes and reads
        self.step_seq = {(e.step, e.session): e.seq for e in timeline.events if e.outcome is Outcome.OK}

    def window(self, event: Event) -> Window:
        """When the snapshot of the statement `event` settled was taken."""
        if event.seq not in self._windows:
            self._windows[event.seq] = self._window(event)
        return self._windows[event.seq]

    def _window(self, event: Event) -> Window:
        span = self.owners.of_event(event.seq)
        if span is not None and self.level(span) in (Level.REPEATABLE_READ, Level.SERIALIZABLE):
            first = next((e for e in span.events if not NO_SNAPSHOT.match(e.sql)), event)
            wait = self._wait(first)
            if wait is None:
                return (first.started, first.ended)
            if wait.lock is None or wait.lock.locktype is None:  # a safe snapshot's wait: taken after it
                return self._after_wait(first)
            return (first.started, wait.ended)  # taken before the statement waited for a lock
        return self._after_wait(event) if event.after_wait else (event.started, event.ended)

    def level(self, span: Span) -> Level:
        """The transaction's level: as its own BEGIN or SET TRANSACTION says, else its
        session's pinned level, else the run's."""
        for event in span.events:
            if NO_SNAPSHOT.match(event.sql) and (said := EXPLICIT_LEVEL.search(event.sql)):
                return Level.parse(said.group(1))
        return self.levels.get(span.transaction.session, self.timeline.level)

    def _after_wait(self, event: Event) -> Window:
        """A statement's moment after its wait: between the last event recorded before its
        completion (the commit or rollback that released it) and the completion."""
        before = [e.ended for e in self.timeline.events if e.seq < event.seq]
        return (max(before, default=event.started), event.ended)

    def _wait(self, event: Event) -> Event | None:
        """The BLOCKED event of the statement `event` completed, if it waited."""
        if not event.after_wait:
            return None
        return next((e for e in self.timeline.events if e.session == event.session and e.step == event.step
                     and e.started == event.started and e.outcome is Outcome.BLOCKED), None)

    def commit(self, transaction: str | None) -> Window:
        """When a transaction committed; the setup's version was always there."""
        if transaction is None:
            return (-math.inf, -math.inf)
        end = self.owners.span(transaction).end
        return (end.started, end.ended) if end is not None else (-math.inf, math.inf)

    def scan_window(self, event: Event) -> Window:
        """When the snapshot a row-locking statement (UPDATE, DELETE, SELECT ... FOR UPDATE)
        scanned its table with was taken: as `window`, except that at READ COMMITTED one that
        waited took it when it began, before its wait; after the wait it re-checks only the
        rows it waited for (13.2.1; history/dml.py)."""
        span = self.owners.of_event(event.seq)
        if span is not None and self.level(span) in (Level.REPEATABLE_READ, Level.SERIALIZABLE):
            return self.window(event)
        wait = self._wait(event)
        return (event.started, wait.ended) if wait is not None else (event.started, event.ended)

    def visible(self, event: Event, table: str, key: Key, window: Window | None = None) -> list[VersionRef]:
        """The versions of one object the statement could have seen: one, or several when
        the clock cannot tell (their commit and the snapshot overlap). `window`: when the
        snapshot was taken, if not the statement's `window`."""
        span = self.owners.of_event(event.seq)
        mine = span.id if span else None
        low, high = window or self.window(event)
        chain = self.chains.get((table, key), [])
        seen: list[VersionRef] = []
        for index, version in enumerate(chain):
            later = chain[index + 1] if index + 1 < len(chain) else None
            if version.writer == mine and mine is not None:
                written = self.step_seq.get((version.step, span.transaction.session)) if version.step else None
                if written is None:
                    seen.append(version)
                elif written < event.seq:
                    seen = [version]
                continue
            if later is not None and later.writer == version.writer and version.writer is not None:
                continue  # an intermediate version: never visible to another transaction
            begun, done = self.commit(version.writer)
            if done <= low:
                seen = [version]
            elif begun < high:
                seen.append(version)
            else:
                break
        return seen


def reads(timeline: Timeline, capture: HistoryCapture, owners: Owners, snapshots: Snapshots) -> tuple[Read, ...]:
    """Every row a SELECT returned, per table its columns came from, matched to versions."""
    by_oid = {t.oid: t for t in capture.tables if t.tracked}
    tests = {(p.event_seq, p.table): p for p in capture.predicates}
    found: list[Read] = []
    for event in timeline.events:
        span = owners.of_event(event.seq)
        if (span is None or event.outcome is not Outcome.OK or not event.rows or not event.column_origins
                or not (event.status or "").startswith("SELECT") or PYTHON in (event.column_types or ())):
            continue
        for info, positions in _tables(event, by_oid).items():
            columns = tuple(info.columns[info.attnums.index(a)] for _, a in positions)
            test = tests.get((event.seq, info.name))
            for row in event.rows:
                values = tuple(row[i] for i, _ in positions)
                candidates = _candidates(snapshots, event, info, columns, values, test)
                by_key = all(c in columns for c in info.key_columns)
                found.append(Read(span.id, event.step, event.seq, info.name, columns, values, candidates, by_key))
    return tuple(found)


def _tables(event: Event, by_oid: dict[int, TableInfo]) -> dict[TableInfo, list[tuple[int, int]]]:
    """(result column index, attnum) of each column that is a tracked table's, by table."""
    groups: dict[TableInfo, list[tuple[int, int]]] = {}
    for index, (oid, attnum) in enumerate(event.column_origins or ()):
        info = by_oid.get(oid)
        if info is not None and attnum in info.attnums:
            groups.setdefault(info, []).append((index, attnum))
    return groups


def _candidates(snapshots: Snapshots, event: Event, info: TableInfo, columns: tuple[str, ...], values: Row,
                test: PredicateTest | None) -> tuple[VersionRef, ...]:
    """The versions the statement could see whose values equal the row's (and that satisfy
    its WHERE clause, when the server re-evaluated it)."""
    where = [info.columns.index(c) for c in columns]
    satisfied = satisfies(test) if test else None
    found = []
    for (table, key) in snapshots.chains:
        if table != info.name:
            continue
        for version in snapshots.visible(event, table, key):
            if version.row is None or tuple(version.row[i] for i in where) != values:
                continue
            if satisfied is None or satisfied(version):
                found.append(version)
    return tuple(found)


def satisfies(test: PredicateTest) -> Callable[[VersionRef], bool]:
    """Whether a version satisfies the test's WHERE clause (as the server evaluated it); a
    deleted or absent version never does."""
    after = {seq: now for seq, _, now in test.writes}
    return lambda v: v.row is not None and (v.key in test.initial if v.seq is None else after.get(v.seq, False))


def predicate_reads(capture: HistoryCapture, owners: Owners, found: tuple[Read, ...],
                    timeline: Timeline) -> tuple[PredicateRead, ...]:
    """One PredicateRead per PredicateTest of a read in a known transaction: the keys of the
    rows it returned, where the rows name them."""
    steps = {e.seq: e.step for e in timeline.events}
    result = []
    for test in capture.predicates:
        span: Span | None = owners.of_event(test.event_seq)
        if span is None:
            continue
        keys = tuple(dict.fromkeys(r.version.key for r in found
                                   if r.event_seq == test.event_seq and r.table == test.table and r.version))
        result.append(PredicateRead(span.id, steps[test.event_seq], test.event_seq, test.table, test.predicate, keys))
    return tuple(result)
