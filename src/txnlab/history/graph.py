"""The dependency graph between committed transactions (Adya, "Weak Consistency", 1999,
section 3.1.4; Elle's rw-register edges): a networkx DiGraph whose edges carry every Edge
that joins two transactions.

Item edges, per object: ww from the writer of a version to the writer of the next one; wr
from the writer of a version to a transaction that read it; rw from a transaction that read a
version to the writer of the next one. Predicate edges, per re-evaluated WHERE clause (Adya's
predicate dependencies, 3.1.3): a write that changes which rows match (its row comes into or
drops out of the condition) gives rw when its transaction committed after the read's snapshot
(the read missed it), wr when it committed before (the read saw it). The clause of a
statement that locks the rows it chooses (UPDATE, DELETE, SELECT ... FOR UPDATE) on a table
with a key goes by the version of each row it saw (history/dml.py): wr from the writer of
that version when its write changed the matches, rw to the writer of each later version that
changed them.

A ww edge rests on two logged writes only (observed); an edge through a read rests on the
match of its values to a version (inferred unless the row held the key and one version
matched), a predicate edge on the snapshot too (always inferred).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from txnlab.history import dml
from txnlab.history.model import (
    Edge, EdgeKind, History, HistoryCapture, LoggedWrite, PredicateTest, Read, Row, TableInfo, VersionRef,
)
from txnlab.history.predicates import predicate_read
from txnlab.history.reads import Snapshots, satisfies
from txnlab.history.settings import LITERALS, SessionSettings
from txnlab.history.transactions import Owners
from txnlab.timeline import Event, Timeline


@dataclass(frozen=True)
class Graph:
    """The edges, the networkx DiGraph of committed transactions (attribute `edges` on each
    arc: the Edges it stands for), each edge's short clause for the explanation, and what
    could not be placed (one sentence each)."""

    edges: tuple[Edge, ...]
    digraph: nx.DiGraph
    clauses: dict[Edge, str]
    gaps: tuple[str, ...] = ()


def build(history: History, capture: HistoryCapture, snapshots: Snapshots, timeline: Timeline,
          settings: SessionSettings | None = None) -> Graph:
    """Every ww, wr and rw edge between two different committed transactions. A WHERE clause
    whose session changed a setting its literals are read under (`settings`: TimeZone,
    DateStyle, IntervalStyle) gives no predicate edge: the server re-evaluated it under the
    log's settings, not the session's."""
    committed = [t.id for t in history.transactions if t.outcome == "committed"]
    words = _Words({t.name: t for t in capture.tables})
    found: dict[Edge, str] = {}
    chains: dict[tuple[str, tuple], list[VersionRef]] = {}
    for version in history.versions:
        chains.setdefault((version.table, version.key), []).append(version)
    for chain in chains.values():
        for old, new in zip(chain, chain[1:]):
            if old.writer is not None and new.writer is not None and old.writer != new.writer:
                found.update(words.ww(old, new))
    for read in history.reads:
        version = read.version
        if version is None:
            continue
        chain = chains[(version.table, version.key)]
        inferred = _inferred(read, chain, words.tables[read.table])
        if version.writer is not None and version.writer != read.transaction:
            found.update(words.wr(read, version, inferred))
        following = chain[version.number + 1] if version.number + 1 < len(chain) else None
        if following is not None and following.writer not in (None, read.transaction):
            found.update(words.rw(read, version, following, inferred))
    events = {e.seq: e for e in timeline.events}
    writes = {w.seq: w for w in capture.writes}
    gaps: list[str] = []
    tables = frozenset(words.tables)
    for test in capture.predicates:
        span = snapshots.owners.of_event(test.event_seq)
        event = events[test.event_seq]
        statement = predicate_read(event.sql, tables)
        if span is not None and settings is not None and (changed := settings.changed(event) & LITERALS):
            gaps.append(f"{event.step}'s condition on {test.table} was re-evaluated under the log's settings, but"
                        f" session {event.session} changed {', '.join(sorted(changed))}: no predicate edge from it")
        elif span is not None and statement is not None and statement.locks_rows and words.tables[test.table].tracked:
            seen, unplaced = dml.seen(test, event, statement, snapshots, history.reads)
            gaps += unplaced
            for one in seen:
                found.update(_seen_edges(one, chains[(one.version.table, one.version.key)], words))
        elif span is not None:
            found.update(_predicate_edges(test, span.id, event, writes, snapshots, words))
    keep = {e: c for e, c in found.items() if e.source in committed and e.target in committed and e.source != e.target}
    digraph = nx.DiGraph()
    digraph.add_nodes_from(committed)
    for edge in keep:
        if not digraph.has_edge(edge.source, edge.target):
            digraph.add_edge(edge.source, edge.target, edges=[])
        digraph[edge.source][edge.target]["edges"].append(edge)
    return Graph(tuple(keep), digraph, keep, tuple(gaps))


def _predicate_edges(test: PredicateTest, reader: str, event: Event, writes: dict[int, LoggedWrite],
                     snapshots: Snapshots, words: "_Words") -> dict[Edge, str]:
    """Predicate edges of one re-evaluated read: each write that changed its matches (the row
    it wrote satisfies the WHERE clause before and not after, or after and not before) by
    another transaction that committed after the read's snapshot (rw) or before it (wr).
    When the clock cannot tell, no edge. Rows need no key for this: keyless tables count."""
    low, high = snapshots.window(event)
    found: dict[Edge, str] = {}
    for seq, before, after in _net_writes(test, writes, snapshots.owners, words.tables[test.table]):
        writer, step = snapshots.owners.writes.get(seq, (None, None))
        if before == after or writer in (None, reader):
            continue
        begun, done = snapshots.commit(writer)
        kind: EdgeKind | None = "rw" if begun >= high else "wr" if done <= low else None
        if kind is not None:
            found.update(words.predicate(test, reader, event.step, writes[seq], writer, step, kind))
    return found


def _net_writes(test: PredicateTest, writes: dict[int, LoggedWrite], owners: Owners,
                info: TableInfo) -> list[tuple[int, bool, bool]]:
    """`test.writes` with each transaction's writes of one object folded into one (its last
    write's seq, its first write's `before`, its last write's `after`): another transaction
    never sees an intermediate version, so only the net change can change what its condition
    matched (a DELETE then re-INSERT of one key changes nothing). A keyless table's writes, and
    those of no known transaction, stay one by one."""
    if not info.tracked:
        return list(test.writes)
    folded: dict[tuple[str, object], tuple[int, bool, bool]] = {}
    for seq, before, after in sorted(test.writes):
        write, writer = writes[seq], owners.writes.get(seq, (None, None))[0]
        row = write.after if write.after is not None else write.before
        key: tuple[str, object] = (writer, info.key_of(row)) if writer is not None and row is not None else ("", seq)
        first = folded.get(key)
        folded[key] = (seq, first[1] if first else before, after)
    return sorted(folded.values())


def _seen_edges(seen: dml.Seen, chain: list[VersionRef], words: "_Words") -> dict[Edge, str]:
    """The predicate edges of what a row-locking statement saw of one row it did not choose: wr
    from the writer of the version it saw when that write changed the matches; rw to the
    writer of each later version that changed them (Adya, 3.1.4). Intermediate versions are
    skipped: only a transaction's last version of a row changes what others match."""
    matches = satisfies(seen.test)
    installed = [v for i, v in enumerate(chain)
                 if not (v.writer is not None and i + 1 < len(chain) and chain[i + 1].writer == v.writer)]
    found: dict[Edge, str] = {}
    earlier = [v for v in installed if v.number < seen.version.number]
    writer = seen.version.writer
    if writer not in (None, seen.transaction) and earlier and matches(earlier[-1]) != matches(seen.version):
        found.update(words.saw(seen, earlier[-1]))
    previous = seen.version
    for later in (v for v in installed if v.number > seen.version.number):
        if later.writer not in (None, seen.transaction) and matches(previous) != matches(later):
            found.update(words.missed(seen, later))
        previous = later
    return found


class _Words:
    """The evidence of each kind of edge, in words, and its short clause."""

    def __init__(self, tables: dict[str, TableInfo]) -> None:
        self.tables = tables

    def show(self, version: VersionRef, columns: tuple[str, ...] | None = None, values: Row | None = None) -> str:
        """`accounts[1].balance = 100`, `pairs[1] = (a, 10)`, `test[3] (deleted)`: the columns
        given (the table's, when None) without the key's, which the object's name says;
        `values` are theirs as a read returned them (the version's own, when None)."""
        if version.row is None and values is None:
            return f"{version.object} (deleted)" if version.number else f"{version.object} (absent)"
        named, shown = self._shown(version, columns, values)
        return f"{version.object}.{named[0]} = {shown}" if len(named) == 1 else f"{version.object} = {shown}"

    def value(self, version: VersionRef, columns: tuple[str, ...] | None = None) -> str:
        """The version's values alone (`150`, `(a, 10)`), or "a deletion"."""
        return self._shown(version, columns, None)[1] if version.row is not None else "a deletion"

    def _shown(self, version: VersionRef, columns: tuple[str, ...] | None, values: Row | None) -> tuple[list[str], str]:
        """The columns to show (the key's left out when the whole key is among them) and
        their values as one text: `100`, or `(alice, 100)` for several."""
        info = self.tables[version.table]
        columns = columns or info.columns
        if values is None:
            values = tuple(version.row[info.columns.index(c)] for c in columns)
        pairs = list(zip(columns, values))
        if all(c in columns for c in info.key_columns) and any(c not in info.key_columns for c in columns):
            pairs = [(c, v) for c, v in pairs if c not in info.key_columns]
        texts = ["NULL" if v is None else v for _, v in pairs]
        return [c for c, _ in pairs], texts[0] if len(texts) == 1 else f"({', '.join(texts)})"

    def changed(self, old: VersionRef, new: VersionRef) -> tuple[str, ...] | None:
        info = self.tables[old.table]
        if old.row is None or new.row is None:
            return None
        columns = tuple(c for i, c in enumerate(info.columns) if old.row[i] != new.row[i])
        return columns or None

    def ww(self, old: VersionRef, new: VersionRef) -> dict[Edge, str]:
        cols = self.changed(old, new)
        evidence = (f"{new.writer} overwrote {self.show(old, cols)}, the version {old.writer} wrote"
                    f"{_at(old.step)}, with {self.value(new, cols)}{_at(new.step)}")
        clause = f"{new.writer} overwrote {old.writer}'s {self.show(old, cols)} with {self.value(new, cols)}{_at(new.step, '')}"
        edge = Edge(old.writer, new.writer, "ww", old.object, evidence, _steps(old.step, new.step))
        return {edge: clause}

    def wr(self, read: Read, version: VersionRef, inferred: bool) -> dict[Edge, str]:
        seen = self.show(version, read.columns, read.values)
        evidence = f"{read.transaction} read {seen} at {read.step}, the version {version.writer} wrote{_at(version.step)}"
        clause = f"{read.transaction} read {seen} ({read.step}), which {version.writer} wrote{_at(version.step, '')}"
        edge = Edge(version.writer, read.transaction, "wr", version.object, evidence,
                    _steps(version.step, read.step), inferred=inferred)
        return {edge: clause}

    def rw(self, read: Read, version: VersionRef, following: VersionRef, inferred: bool) -> dict[Edge, str]:
        seen = self.show(version, read.columns, read.values)
        changed = self.changed(version, following)
        # What the overwrite changed: in the columns read when it changed them, else its own columns
        # (`doctors[bob].on_call = f`, rather than the unchanged `name = bob` that was read).
        shown = (self.value(following, read.columns) if changed is None or set(changed) & set(read.columns)
                 else self.show(following, changed))
        evidence = (f"{read.transaction} read {seen} at {read.step}, the version {following.writer} overwrote"
                    f" with {shown}{_at(following.step)}")
        clause = f"{read.transaction} read {seen} ({read.step}); {following.writer} overwrote it{_at(following.step, '')}"
        edge = Edge(read.transaction, following.writer, "rw", version.object, evidence,
                    _steps(read.step, following.step), inferred=inferred)
        return {edge: clause}

    def predicate(self, test: PredicateTest, reader: str, step: str, write: LoggedWrite, writer: str,
                  written_at: str | None, kind: EdgeKind) -> dict[Edge, str]:
        where = f"{test.table} WHERE {test.predicate}"
        row = self.written(write)
        if kind == "rw":
            evidence = (f"{reader} read {where} at {step} and did not see {row}, which {writer}"
                        f" wrote{_at(written_at)} and which changes its matches")
            clause = f"{reader} read {where} ({step}) before {writer}'s {row}{_at(written_at, '')} changed its matches"
            steps = _steps(step, written_at)
        else:
            evidence = (f"{reader} read {where} at {step} and saw {row}, which {writer}"
                        f" wrote{_at(written_at)} and which changes its matches")
            clause = f"{reader} read {where} ({step}), seeing {writer}'s {row}{_at(written_at, '')}"
            steps = _steps(written_at, step)
        source, target = (reader, writer) if kind == "rw" else (writer, reader)
        edge = Edge(source, target, kind, test.table, evidence, steps, predicate=True, inferred=True)
        return {edge: clause}

    def saw(self, seen: dml.Seen, replaced: VersionRef) -> dict[Edge, str]:
        """wr: the statement saw `seen.version`, whose write made the row stop or start to
        match (`replaced` is the version before it)."""
        how = "re-checked the row and saw" if seen.rechecked is not None else "saw"
        said = f"{how} {self.state(seen.version, seen, replaced)}, not {self.state(replaced, seen, seen.version)}"
        version = seen.version
        evidence = f"{self.statement(seen)} at {seen.step} did not {seen.verb} {version.object}: it {said}"
        clause = f"{self.statement(seen)} ({seen.step}) did not {seen.verb} {version.object}: it {said}"
        edge = Edge(version.writer, seen.transaction, "wr", version.object, evidence, _steps(version.step, seen.step),
                    predicate=True, inferred=True)
        return {edge: clause}

    def missed(self, seen: dml.Seen, later: VersionRef) -> dict[Edge, str]:
        """rw: the statement saw `seen.version`; `later`, installed after it, changed the matches."""
        said = f"saw {self.state(seen.version, seen, later)}, not {self.state(later, seen, seen.version)}"
        missed = f"did not {seen.verb} {later.object}: it {said}"
        evidence = f"{self.statement(seen)} at {seen.step} {missed}{_at(later.step)}"
        clause = f"{self.statement(seen)} ({seen.step}) {missed}{_at(later.step, '')}"
        edge = Edge(seen.transaction, later.writer, "rw", later.object, evidence, _steps(seen.step, later.step),
                    predicate=True, inferred=True)
        return {edge: clause}

    def statement(self, seen: dml.Seen) -> str:
        """`b's DELETE FROM test WHERE value = 20`, `b's UPDATE test ... WHERE value = 20`,
        `b's SELECT ... FROM test WHERE value = 20 FOR UPDATE`."""
        command, table, where = seen.statement.command, seen.test.table, f"WHERE {seen.test.predicate}"
        said = {"DELETE": f"DELETE FROM {table} {where}", "UPDATE": f"UPDATE {table} ... {where}",
                "SELECT": f"SELECT ... FROM {table} {where} {seen.statement.locking}"}[command]
        return f"{seen.transaction}'s {said}"

    def state(self, version: VersionRef, seen: dml.Seen, other: VersionRef) -> str:
        """One version as a statement saw it, against `other`: `a's 30`, `10` (the setup's),
        `its own 5`, `a's deletion`, `no row`; the columns shown are those that differ."""
        if version.row is None:
            return "no row" if version.writer is None else f"{self._whose(version, seen)}deletion"
        return f"{self._whose(version, seen)}{self.value(version, self.changed(version, other))}"

    @staticmethod
    def _whose(version: VersionRef, seen: dml.Seen) -> str:
        if version.writer is None:
            return ""
        return "its own " if version.writer == seen.transaction else f"{version.writer}'s "

    def written(self, write: LoggedWrite) -> str:
        """The row a write left (the row it deleted, for a DELETE): `doctors[bob].on_call = f`,
        or `bookings row (orion, 10:00, bob)` for a table without a key."""
        info = self.tables[write.table]
        row = write.after if write.after is not None else write.before
        if info.tracked:
            key = info.key_of(row)
            return self.show(VersionRef(write.table, key, 1, write.after, None, None, write.seq))
        shown = ", ".join("NULL" if v is None else v for v in row)
        return f"{write.table} row ({shown})" + (" (deleted)" if write.after is None else "")


def _at(step: str | None, word: str = " at") -> str:
    if step is None:
        return ""
    return f" ({step})" if word == "" else f"{word} {step}"


def _steps(*steps: str | None) -> tuple[str, ...]:
    return tuple(s for s in dict.fromkeys(steps) if s is not None)


def _inferred(read: Read, chain: list[VersionRef], info: TableInfo) -> bool:
    """A read's edge is observed only when the row held the whole key, one version survived
    the snapshot's filter, and no other version of that object, visible or not, has the
    values the row returned: then the snapshot's placement (inferred from the clock) cannot
    have chosen among equals."""
    if not (read.by_key and len(read.candidates) == 1):
        return True
    where = [info.columns.index(c) for c in read.columns]
    equal = [v for v in chain if v.row is not None and tuple(v.row[i] for i in where) == read.values]
    return len(equal) != 1
