"""The read by condition of an UPDATE or DELETE: which version of each row it saw.

An UPDATE or DELETE ... WHERE evaluated its clause on a version of every row of its table
(history/predicates.py re-evaluates the clause on every version the history holds). Which
version is decided by facts first, the clock second:

- A row the statement wrote: it saw the version its write replaced (the log's before row),
  which satisfied the clause. The ww edge already orders the two writers; no edge comes
  from this read. The command status says how many rows it wrote: when the log holds fewer
  (a step changed the table's columns, say), nothing is derived from the statement.
- A row it did not write: it saw a version that does NOT satisfy the clause. The statement
  scanned the table with a snapshot (PostgreSQL's docs, 13.2 "Transaction Isolation"): at
  READ COMMITTED taken when the statement began, at REPEATABLE READ and SERIALIZABLE the
  transaction's. At READ COMMITTED a row whose snapshot version satisfied the clause but had
  been updated by a concurrent transaction is re-checked in its latest version, after waiting
  for that transaction to end (13.2.1; EvalPlanQual in the server's source): if the statement
  then did not write the row, that later version is the one it saw. At REPEATABLE READ and
  SERIALIZABLE such a row makes the statement fail with 40001, so one that succeeded saw its
  snapshot's version of every row it did not write.

The versions these rules allow and the clock does not exclude are the candidates: one is the
version seen (an inferred read); none or several is a gap, and no edge is drawn from it.
Tables without a primary key have no objects: their reads by condition go by the clock alone
(history/graph.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from txnlab.history.model import PredicateTest, VersionRef
from txnlab.history.reads import Snapshots, satisfies
from txnlab.levels import Level
from txnlab.timeline import Event

COMMANDS = ("UPDATE", "DELETE")


@dataclass(frozen=True)
class Seen:
    """The version of one object that an UPDATE or DELETE (`command`) saw and did not write.

    `version` does not satisfy the clause; `rechecked` is the version its snapshot held, which
    did, when it saw `version` by re-checking the row at READ COMMITTED (else None)."""

    transaction: str
    step: str
    command: str
    test: PredicateTest
    version: VersionRef
    rechecked: VersionRef | None = None


def command(event: Event) -> str | None:
    """UPDATE or DELETE when the step's command status says it was one, else None."""
    verb = (event.status or "").split(" ", 1)[0]
    return verb if verb in COMMANDS else None


def seen(test: PredicateTest, event: Event, snapshots: Snapshots) -> tuple[list[Seen], list[str]]:
    """What the UPDATE or DELETE `event` (with its re-evaluated clause `test`) saw of every
    object of its table it did not write (module docstring), and a gap per object whose
    version cannot be told."""
    span = snapshots.owners.of_event(event.seq)
    verb = command(event)
    if span is None or verb is None:
        return [], []
    matches = satisfies(test)
    own = {seq for seq, owner in snapshots.owners.writes.items() if owner == (span.id, event.step)}
    logged = {v.seq for (table, _), chain in snapshots.chains.items() if table == test.table
              for v in chain if v.seq in own}
    count = int(event.status.rsplit(" ", 1)[-1])  # the command status: "DELETE 2"
    if len(logged) != count:
        return [], [f"{event.step}'s {verb} wrote {count} row(s) of {test.table}, {len(logged)} of them logged: "
                    "which versions its WHERE clause rejected is not derived"]
    rechecks = snapshots.level(span) not in (Level.REPEATABLE_READ, Level.SERIALIZABLE)
    scan = snapshots.scan_window(event)
    found: list[Seen] = []
    gaps: list[str] = []
    for (table, key), chain in snapshots.chains.items():
        if table != test.table or any(v.seq in own for v in chain):
            continue  # a row it wrote (or moved): it saw the version its write replaced
        options: list[tuple[VersionRef, VersionRef | None]] = []
        for version in snapshots.visible(event, table, key, scan):
            if not matches(version):
                options.append((version, None))
            elif rechecks:
                options += [(later, version) for later in snapshots.visible(event, table, key)
                            if later.number > version.number and not matches(later)]
        options = list(dict.fromkeys(options))
        if len(options) == 1:
            found.append(Seen(span.id, event.step, verb, test, *options[0]))
        else:
            name = chain[0].object
            which = "could be " + ", ".join(f"v{v.number}" for v, _ in options) if options else "matches no version"
            gaps.append(f"{event.step}'s {verb} did not write {name}, and which version of it its WHERE clause "
                        f"rejected cannot be told: it {which}")
    return found, gaps

