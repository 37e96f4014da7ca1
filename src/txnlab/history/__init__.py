"""The history stage, between the timeline and the checks: what each transaction read and
wrote, the dependency graph between committed transactions, and its cycles named and
explained (Adya's anomalies: G0, G1a, G1b, G1c, G-single, G2-item, G2, lost update).

`analyse(timeline)` is the stage's entry point; see history/model.py for the data.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import replace

from txnlab.signals import deferred_signals

# networkx and pglast load with a signal held back, then delivered: one that lands while they
# load can be lost (Python turns what a class's __set_name__ raises into RuntimeError, and C
# code that imports, such as ElementTree's accelerator, may drop it), and the run would go on
# with every further signal ignored. Together they take about 0.13 s to load.
with deferred_signals():
    for library in ("networkx", "pglast"):
        importlib.import_module(library)

from txnlab.history import classify, coverage, graph, reads, transactions
from txnlab.history.explain import explain
from txnlab.history.model import Analysis, DerivedAnomaly, History
from txnlab.history.settings import SessionSettings
from txnlab.levels import Level
from txnlab.timeline import Timeline



def analyse(timeline: Timeline, levels: Mapping[str, Level] | None = None,
            setups: Mapping[str, tuple[str, ...]] | None = None) -> Analysis | None:
    """The run's history, its dependency edges and its anomalies, derived from the timeline
    and its HistoryCapture without touching the database; None when no history was recorded.
    `levels`: the sessions whose level the scenario pins (SessionSpec.level), by name;
    `setups`: each session's setup SQL (the settings it changes count for its reads)."""
    capture = timeline.history
    if capture is None:
        return None
    owners = transactions.owners(timeline, capture)
    versions = reads.versions(capture, owners)
    snapshots = reads.Snapshots(timeline, owners, versions, levels)
    settings = SessionSettings(timeline.events, dict(setups or {}))
    skipped = coverage.repeated(timeline, capture)  # self-joins: columns of two rows in one result row
    found = tuple(r for r in reads.reads(timeline, capture, owners, snapshots, settings)
                  if (r.event_seq, r.table) not in skipped)
    by_condition = reads.predicate_reads(capture, owners, found, timeline)
    history = History(
        transactions=tuple(s.transaction for s in owners.spans),
        versions=versions,
        reads=found,
        predicate_reads=by_condition,
        gaps=capture.gaps + owners.gaps + settings.gaps + tuple(_unlogged(owners)),
        unrecorded=coverage.unrecorded(timeline, capture, owners, found, by_condition, skipped),
    )
    built = graph.build(history, capture, snapshots, timeline, settings)
    history = replace(history, gaps=history.gaps + built.gaps)
    began = tuple(t.id for t in history.transactions)
    anomalies = [
        DerivedAnomaly(name, cycle, explain(name, cycle, built.clauses, began), classify.WEAKEST_VIOLATED[name])
        for name, cycle in classify.shortest_cycles(built.digraph, history)
    ]
    anomalies += [
        DerivedAnomaly("G1b", (edge,), explain("G1b", (edge,), built.clauses, began), classify.WEAKEST_VIOLATED["G1b"])
        for edge in classify.intermediate_reads(history, built.edges)
    ]
    return Analysis(history, built.edges, tuple(anomalies))


def _unlogged(owners: transactions.Owners) -> list[str]:
    """What the history cannot know of the transactions that did not commit and tried to write
    (coverage.tried_to_write): what they wrote is not in the transactional log."""
    ended = [s.id for s in owners.spans
             if s.transaction.outcome != "committed" and any(coverage.tried_to_write(e) for e in s.events)]
    if not ended:
        return []
    return [f"{', '.join(ended)} did not commit: what {'it' if len(ended) == 1 else 'they'} wrote is not "
            "logged, so a read of it (G1a) cannot be derived"]
