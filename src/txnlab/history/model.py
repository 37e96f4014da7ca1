"""The data of the history stage: what each transaction of a run read and wrote, the
dependency edges between committed transactions, and the cycles among them.

Two halves. `HistoryCapture` is what the runner observed on the server (history/capture.py):
every row version a committed transaction wrote, logged by a trigger, and the state the
setup left; it travels on the Timeline. `History`, `Edge`, `DerivedAnomaly` and `Analysis`
are derived from a timeline and its capture without touching the database
(history/transactions.py, reads.py, graph.py, classify.py, explain.py).

Terms are Adya's ("Weak Consistency", MIT thesis, 1999, chapter 3) as Elle uses them for
rw-registers (Kingsbury and Alvaro, "Elle", VLDB 2020): an object is one row of one table,
named by its primary key; each committed write installs a new version of it; ww, wr and rw
(anti-dependency) edges go between committed transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from txnlab.levels import Level

Row = tuple[str | None, ...]  # a row's values as the server's text, in the table's column order (None: NULL)
Key = tuple[str | None, ...]  # a row's primary key values, as the server's text, in the key's column order


@dataclass(frozen=True)
class TableInfo:
    """A table of the run's schema as the history sees it (pg_class, pg_attribute, pg_index).

    A table without a primary key is `tracked = False`: its rows have no identity, so its
    writes are logged but give no edges (a ledger's INSERTs, say)."""

    name: str  # unqualified
    oid: int
    columns: tuple[str, ...]  # the columns that are not dropped, in attnum order
    attnums: tuple[int, ...]  # pg_attribute.attnum of each of `columns`
    key_columns: tuple[str, ...]  # the primary key's columns, in key order; () when it has none

    @property
    def tracked(self) -> bool:
        return bool(self.key_columns)

    def key_of(self, row: Row) -> Key:
        """The primary key's values within a whole row of this table."""
        return tuple(row[self.columns.index(c)] for c in self.key_columns)


Operation = Literal["INSERT", "UPDATE", "DELETE"]


@dataclass(frozen=True)
class LoggedWrite:
    """One row written by a transaction that committed, exactly as the history trigger logged
    it (an AFTER ROW trigger on every table of the run's schema; its log is transactional, so
    writes that were rolled back, by ROLLBACK or ROLLBACK TO SAVEPOINT, are not in it).

    `before`/`after` are the whole row's text (OLD and NEW), None for an INSERT's before and
    a DELETE's after. Writes of one object appear in `seq` order, which is the order its
    versions were installed: PostgreSQL lets one transaction at a time write a row."""

    seq: int  # order in the log (a sequence's nextval when the trigger fired)
    pid: int  # the backend that wrote it (pg_backend_pid())
    xid: str  # its top-level transaction id (pg_current_xact_id())
    table: str
    operation: Operation
    before: Row | None
    after: Row | None
    statement: int  # the statement it belongs to: equal for every row one statement wrote, rising with each
    query: str  # the top-level statement's text as the server received it (current_query())


@dataclass(frozen=True)
class PredicateTest:
    """Which row versions satisfy one read's WHERE clause, evaluated on the server after the run
    (history/predicates.py): exact, for the reads simple enough to re-evaluate (one table in
    FROM, a WHERE clause with no subquery and nothing volatile), absent for the others."""

    event_seq: int  # the Event whose read this is
    table: str
    predicate: str  # the WHERE clause as SQL (deparsed from the statement)
    initial: frozenset[Key]  # keys of the rows the setup left that satisfy it
    writes: tuple[tuple[int, bool, bool], ...]  # (LoggedWrite.seq, its before satisfies, its after satisfies)


@dataclass(frozen=True)
class HistoryCapture:
    """Everything the runner observed for the history of one run (see module docstring).

    `column_origins` of each Event (which table column each result column came from) tells
    which result columns are reads of which table; everything else is here."""

    tables: tuple[TableInfo, ...]
    initial: tuple[tuple[str, Row], ...]  # (table, row) for every row the setup left in a tracked table
    writes: tuple[LoggedWrite, ...]  # in seq order
    session_pids: tuple[tuple[str, int], ...]  # (session, backend pid) for each session's connection
    predicates: tuple[PredicateTest, ...] = ()
    # What the capture could not see, one sentence each: "accounts_log has no primary key: its
    # rows are not objects, so its writes give no edges", "step x truncated t"...
    gaps: tuple[str, ...] = ()

    def table(self, name: str) -> TableInfo | None:
        return next((t for t in self.tables if t.name == name), None)


# ---------------------------------------------------------------------------------------------
# Derived: history/transactions.py, reads.py, graph.py, classify.py, explain.py

TransactionOutcome = Literal["committed", "aborted", "unfinished"]


@dataclass(frozen=True)
class Transaction:
    """One transaction of one session: its steps from the first that opened it to the one that
    ended it. `id` is the session's name for its first transaction, `name#2`, `name#3`... for
    later ones; "unfinished" means the run ended with it open (txnlab then rolled it back)."""

    id: str
    session: str
    steps: tuple[str, ...]
    outcome: TransactionOutcome
    xid: str | None = None  # the server's transaction id, when it wrote something


@dataclass(frozen=True)
class VersionRef:
    """One version of one object: `number` 0 is the state the setup left (`row` None: there was
    no such row), n > 0 the n-th committed write of it; `row` None for a deleted row."""

    table: str
    key: Key
    number: int
    row: Row | None
    writer: str | None  # the Transaction.id that installed it; None for the setup's version
    step: str | None  # the step whose statement wrote it, when known
    seq: int | None = None  # its LoggedWrite.seq; None for the setup's version

    @property
    def object(self) -> str:
        """How the words name the object: `accounts[1]`, `pairs[1, 'a']`."""
        return f"{self.table}[{', '.join('NULL' if v is None else v for v in self.key)}]"


@dataclass(frozen=True)
class Read:
    """Rows one step returned from one table, matched to the versions they could be.

    Observed: the values and which table column each came from (the protocol's RowDescription).
    Inferred: which version: those of the table whose values equal the row's and that the read's
    snapshot could see (PostgreSQL's docs, "Transaction Isolation"). One candidate: the read is
    of that version; several: ambiguous (equal values), no edge is drawn from it; none: no
    committed version has these values (never guessed to be anything)."""

    transaction: str
    step: str
    event_seq: int
    table: str
    columns: tuple[str, ...]  # the table's columns this read returned
    values: Row  # their values in the row, in `columns` order
    candidates: tuple[VersionRef, ...]
    by_key: bool  # the row included the whole primary key, so the object itself was observed

    @property
    def version(self) -> VersionRef | None:
        return self.candidates[0] if len(self.candidates) == 1 else None


@dataclass(frozen=True)
class PredicateRead:
    """A read by condition (a WHERE clause the server re-evaluated, see PredicateTest)."""

    transaction: str
    step: str
    event_seq: int
    table: str
    predicate: str
    returned: tuple[Key, ...]  # keys of the rows it returned


@dataclass(frozen=True)
class UnrecordedRead:
    """A read the history does not record (history/coverage.py): `step` of `transaction` read
    `table` (None: the whole step, SQL that cannot be parsed or Python code) `how` ("an
    aggregate", "a subquery", "a self-join"...), so a cycle through that read cannot be seen."""

    transaction: str
    step: str
    table: str | None
    how: str

    @property
    def sentence(self) -> str:
        """The read in words, one line."""
        if self.table is None:
            return f"{self.step} ran {self.how}: what it read is not recorded, so a cycle through it cannot be seen"
        return (f"{self.step} read {self.table} in a way the history does not record ({self.how}): "
                "a cycle through that read cannot be seen")


@dataclass(frozen=True)
class History:
    """What each transaction of a run read and wrote (Adya's history, restricted to what was seen)."""

    transactions: tuple[Transaction, ...]
    versions: tuple[VersionRef, ...]  # every version, by object then number (setup versions included)
    reads: tuple[Read, ...]
    predicate_reads: tuple[PredicateRead, ...]
    gaps: tuple[str, ...] = ()  # the capture's gaps, and what the derivation could not place
    # Reads of committed transactions' steps that no Read or PredicateRead records (coverage.py)
    unrecorded: tuple[UnrecordedRead, ...] = ()

    def transaction(self, id: str) -> Transaction:
        return next(t for t in self.transactions if t.id == id)

    @property
    def writes(self) -> tuple[VersionRef, ...]:
        return tuple(v for v in self.versions if v.writer is not None)


EdgeKind = Literal["ww", "wr", "rw"]


@dataclass(frozen=True)
class Edge:
    """A dependency between two committed transactions (Adya, section 3.1.4):

    ww: `target` installed the version after one `source` installed;
    wr: `target` read a version `source` installed;
    rw: `source` read a version and `target` installed the next one (an anti-dependency);
    `predicate`: through a read by condition rather than of one object.
    `inferred` is False only when every fact it rests on was observed exactly (both writes
    in the log); an edge through a read matched by values, or a predicate's snapshot, is
    inferred. `evidence` says it in words; `steps` are the steps it rests on, in order."""

    source: str
    target: str
    kind: EdgeKind
    object: str  # `accounts[1]`, or the table for a predicate edge
    evidence: str
    steps: tuple[str, ...]
    predicate: bool = False
    inferred: bool = False


AnomalyName = Literal["G0", "G1a", "G1b", "G1c", "G-single", "G2-item", "G2", "lost update"]


@dataclass(frozen=True)
class DerivedAnomaly:
    """An anomaly found in the history: a cycle of edges (for G1a and G1b, a single bad read,
    `cycle` holding the one wr edge), named with Adya's and Elle's definitions.

    `weakest_violated` is the weakest isolation level that proscribes it (history/classify.py
    cites the source); `explanation` is the words, one sentence a line."""

    name: AnomalyName
    cycle: tuple[Edge, ...]
    explanation: tuple[str, ...]
    weakest_violated: Level

    @property
    def transactions(self) -> tuple[str, ...]:
        return tuple(e.source for e in self.cycle)


@dataclass(frozen=True)
class Analysis:
    """A run's history, its dependency graph's edges, and the anomalies found in it (empty when
    the history is serializable as far as was observed)."""

    history: History
    edges: tuple[Edge, ...]
    anomalies: tuple[DerivedAnomaly, ...] = field(default=())
