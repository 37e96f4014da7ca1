"""The history stage, between the timeline and the checks: what each transaction read and
wrote, the dependency graph between committed transactions, and its cycles named and
explained (Adya's anomalies: G0, G1a, G1b, G1c, G-single, G2-item, G2, lost update).

`analyse(timeline)` is the stage's entry point; see history/model.py for the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from txnlab.history import classify, graph, reads, transactions
from txnlab.history.explain import explain
from txnlab.history.settings import SessionSettings
from txnlab.history.model import Analysis, DerivedAnomaly, History, Read
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
    found = reads.reads(timeline, capture, owners, snapshots, settings)
    gaps = capture.gaps + owners.gaps + settings.gaps + tuple(_read_gaps(found)) + tuple(_unlogged(owners))
    history = History(
        transactions=tuple(s.transaction for s in owners.spans),
        versions=versions,
        reads=found,
        predicate_reads=reads.predicate_reads(capture, owners, found, timeline),
        gaps=gaps,
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
    """What the history cannot know of the transactions that did not commit."""
    ended = [s.id for s in owners.spans if s.transaction.outcome != "committed"]
    if not ended:
        return []
    return [f"{', '.join(ended)} did not commit: what {'it' if len(ended) == 1 else 'they'} wrote is not "
            "logged, so a read of it (G1a) cannot be derived"]


def _read_gaps(found: tuple[Read, ...]) -> list[str]:
    """One sentence per read no edge could be drawn from."""
    gaps = []
    for read in found:
        shown = ", ".join(f"{c} = {'NULL' if v is None else v}" for c, v in zip(read.columns, read.values))
        if not read.candidates:
            gaps.append(f"{read.step} read {read.table} ({shown}), which matches no version its snapshot could see")
        elif len(read.candidates) > 1:
            versions = ", ".join(f"{v.object} v{v.number}" for v in read.candidates)
            gaps.append(f"{read.step} read {read.table} ({shown}): ambiguous, it could be {versions}")
    return gaps
