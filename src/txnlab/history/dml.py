"""The read by condition of a statement that locks the rows it chooses (an UPDATE, a DELETE,
a SELECT ... FOR UPDATE/SHARE): which version of each row it saw.

Such a statement evaluated its WHERE clause on a version of every row of its table
(history/predicates.py re-evaluates the clause on every version the history holds). Which
version is decided by facts first, the clock second:

- A row it chose (wrote, or locked and returned): it saw the version it wrote over or
  returned, which satisfied the clause. The ww edge, or the item read, already says so; no
  predicate edge comes from this row. The command status says how many rows it chose: when
  fewer are known (a write the log lost after a step changed the table's columns, a row
  returned without its key), nothing is derived from the statement.
- A row it did not choose: it saw a version that does NOT satisfy the clause. The statement
  scanned the table with a snapshot (PostgreSQL's docs, 13.2 "Transaction Isolation"): at
  READ COMMITTED taken when the statement began, at REPEATABLE READ and SERIALIZABLE the
  transaction's. At READ COMMITTED a row whose snapshot version satisfied the clause but had
  been updated by a concurrent transaction is re-checked in its latest version, after waiting
  for that transaction to end (13.2.1; EvalPlanQual in the server's source): if the statement
  then did not choose the row, that later version is the one it saw. At REPEATABLE READ and
  SERIALIZABLE such a row makes the statement fail with 40001 (13.2.2), so one that succeeded
  saw its snapshot's version of every row it did not choose.

The versions these rules allow and the clock does not exclude are the candidates: one is the
version seen (an inferred read); none or several is a gap, and no edge is drawn from it.
Tables without a primary key have no objects: their reads by condition go by the clock alone
(history/graph.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from txnlab.history.model import Key, PredicateTest, Read, VersionRef
from txnlab.history.predicates import Candidate
from txnlab.history.reads import Snapshots, satisfies
from txnlab.levels import Level
from txnlab.timeline import Event

VERBS = {"UPDATE": "update", "DELETE": "delete", "SELECT": "lock"}


@dataclass(frozen=True)
class Seen:
    """The version of one object a row-locking statement saw and did not choose.

    `version` does not satisfy the clause; `rechecked` is the version its snapshot held, which
    did, when it saw `version` by re-checking the row at READ COMMITTED (else None)."""

    transaction: str
    step: str
    statement: Candidate
    test: PredicateTest
    version: VersionRef
    rechecked: VersionRef | None = None

    @property
    def verb(self) -> str:
        """What choosing a row is for this statement: update, delete, lock."""
        return VERBS[self.statement.command]


def seen(test: PredicateTest, event: Event, statement: Candidate, snapshots: Snapshots,
         found_reads: tuple[Read, ...]) -> tuple[list[Seen], list[str]]:
    """What the row-locking `statement` (the step `event`; its re-evaluated clause `test`) saw
    of every object of its table it did not choose (module docstring), and a gap per object
    whose version cannot be told. `found_reads`: the history's item reads (a locking SELECT
    chose the rows it returned)."""
    span = snapshots.owners.of_event(event.seq)
    if span is None:
        return [], []
    chosen, gap = _chosen(test, event, statement, snapshots, found_reads)
    if chosen is None:
        return [], [gap]
    matches = satisfies(test)
    rechecks = snapshots.level(span) not in (Level.REPEATABLE_READ, Level.SERIALIZABLE)
    scan = snapshots.scan_window(event)
    found: list[Seen] = []
    gaps: list[str] = []
    for (table, key), chain in snapshots.chains.items():
        if table != test.table or key in chosen:
            continue
        options: list[tuple[VersionRef, VersionRef | None]] = []
        for version in snapshots.visible(event, table, key, scan):
            if not matches(version):
                options.append((version, None))
            elif rechecks:
                options += [(later, version) for later in snapshots.visible(event, table, key)
                            if later.number > version.number and not matches(later)]
        options = list(dict.fromkeys(options))
        if len(options) == 1:
            found.append(Seen(span.id, event.step, statement, test, *options[0]))
        else:
            which = "could be " + ", ".join(f"v{v.number}" for v, _ in options) if options else "matches no version"
            gaps.append(f"{event.step}'s {statement.command} did not {VERBS[statement.command]} {chain[0].object}, "
                        f"and which version of it its WHERE clause rejected cannot be told: it {which}")
    return found, gaps


def _chosen(test: PredicateTest, event: Event, statement: Candidate, snapshots: Snapshots,
            found_reads: tuple[Read, ...]) -> tuple[set[Key] | None, str]:
    """The objects the statement chose: those its logged writes wrote (an UPDATE moving a row
    wrote two), or a locking SELECT's rows by their key; None (and why) when the command
    status counts more rows than are known."""
    span = snapshots.owners.of_event(event.seq)
    count = int((event.status or "0").rsplit(" ", 1)[-1])  # the command status: "DELETE 2", "SELECT 1"
    if statement.command == "SELECT":
        rows = [r for r in found_reads if r.event_seq == event.seq and r.table == test.table]
        keys = {r.version.key for r in rows if r.by_key and r.version is not None}
        known = sum(1 for r in rows if r.by_key and r.version is not None)
        what = "returned"
    else:
        own = {seq for seq, owner in snapshots.owners.writes.items() if span and owner == (span.id, event.step)}
        versions = [v for (table, _), chain in snapshots.chains.items() if table == test.table
                    for v in chain if v.seq in own]
        keys = {v.key for v in versions}
        known = len({v.seq for v in versions})
        what = "logged"
    if known != count:
        return None, (f"{event.step}'s {statement.command} chose {count} row(s) of {test.table}, {known} of them "
                      f"{what} with their key: which versions its WHERE clause rejected is not derived")
    return keys, ""
