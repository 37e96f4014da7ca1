"""Cycles in the dependency graph, named as Adya and Elle name them.

Sources: Adya, "Weak Consistency: A Generalized Theory and Optimistic Implementations for
Distributed Transactions" (MIT, 1999), chapter 3 (G0, G1a, G1b, G1c, G2-item, G2) and 4.2
(G-single); Kingsbury and Alvaro, "Elle: Inferring Isolation Anomalies from Experimental
Observations" (VLDB 2020), which names cycles by their edges and reports the shortest of each
kind. A cycle with
  only ww edges is G0;
  ww and wr edges, at least one wr, is G1c;
  exactly one rw edge is G-single -- a "lost update" when it is two transactions that read the
    same version of an object and both wrote it (the rw and the ww edge are on that object);
  two or more rw edges, all on items, is G2-item; with a predicate rw edge, G2.
G1b is a committed read of another transaction's intermediate version (not its last of that
object). G1a (a read of an aborted write) cannot be derived: aborted writes are not logged.

The weakest level each proscribes, per Adya's levels (PL-1 proscribes G0, PL-2 G1, PL-2.99
G2-item, PL-3 G2; G-single is what snapshot isolation proscribes, 4.2) and PostgreSQL's
"Transaction Isolation" table (13.2): G0 -> read uncommitted, G1* -> read committed, G-single
and lost update -> repeatable read, G2-item and G2 -> serializable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import networkx as nx

from txnlab.history.model import AnomalyName, Edge, EdgeKind, History
from txnlab.levels import Level

WEAKEST_VIOLATED: dict[AnomalyName, Level] = {
    "G0": Level.READ_UNCOMMITTED,
    "G1a": Level.READ_COMMITTED,
    "G1b": Level.READ_COMMITTED,
    "G1c": Level.READ_COMMITTED,
    "lost update": Level.REPEATABLE_READ,
    "G-single": Level.REPEATABLE_READ,
    "G2-item": Level.SERIALIZABLE,
    "G2": Level.SERIALIZABLE,
}
ORDER: tuple[AnomalyName, ...] = tuple(WEAKEST_VIOLATED)


def name(cycle: tuple[Edge, ...], history: History) -> AnomalyName:
    """The name of one cycle of edges (module docstring)."""
    rw = [e for e in cycle if e.kind == "rw"]
    if not rw:
        return "G0" if all(e.kind == "ww" for e in cycle) else "G1c"
    if len(rw) == 1:
        return "lost update" if _lost_update(cycle, history) else "G-single"
    return "G2" if any(e.predicate for e in rw) else "G2-item"


def _lost_update(cycle: tuple[Edge, ...], history: History) -> bool:
    """Two transactions, an item rw and a ww edge on one object, and both read the version
    the rw edge's reader read (so both wrote a value computed from the same version)."""
    if len(cycle) != 2 or {e.kind for e in cycle} != {"rw", "ww"}:
        return False
    rw, ww = sorted(cycle, key=lambda e: e.kind)
    if rw.predicate or rw.object != ww.object:
        return False
    read = {r.version for r in history.reads if r.transaction == rw.source and r.version and r.version.object == rw.object}
    return any(r.version in read for r in history.reads if r.transaction == rw.target)


ITEM_RW, PREDICATE_RW = ("rw", False), ("rw", True)
WW_WR = frozenset({("ww", False), ("wr", False), ("wr", True)})


@dataclass(frozen=True)
class Search:
    """One of Elle's searches: from each `first` edge, the shortest way back from its target
    to its source through the `allowed` edges ((kind, predicate) pairs), with one more rw
    edge on the way when `more_rw`, and a predicate rw edge in the cycle when `predicate`."""

    first: frozenset[tuple[EdgeKind, bool]]
    allowed: frozenset[tuple[EdgeKind, bool]]
    more_rw: bool = False
    predicate: bool = False


SEARCHES = (
    Search(frozenset({("ww", False)}), frozenset({("ww", False)})),  # G0
    Search(frozenset({("wr", False), ("wr", True)}), WW_WR),  # G1c
    Search(frozenset({ITEM_RW, PREDICATE_RW}), WW_WR),  # G-single, lost update
    Search(frozenset({ITEM_RW}), WW_WR | {ITEM_RW}, more_rw=True),  # G2-item
    Search(frozenset({ITEM_RW, PREDICATE_RW}), WW_WR | {ITEM_RW, PREDICATE_RW}, more_rw=True, predicate=True),  # G2
)
State = tuple[str, bool, bool]  # a transaction, an rw edge passed on the way, a predicate rw edge passed


def shortest_cycles(digraph: nx.DiGraph, history: History) -> list[tuple[AnomalyName, tuple[Edge, ...]]]:
    """For each strongly connected component (in the order its first transaction began), the
    shortest cycle of each kind, in ORDER: one per kind, ties broken by the order in which
    its transactions began and then the edges' kinds; told from its first rw edge (or its
    first transaction). Breadth-first searches (networkx shortest paths), as Elle does, so
    the cost grows with the edges, never with the number of cycles; a way back that passes a
    transaction twice is not a simple cycle and is left out."""
    rank = {t.id: i for i, t in enumerate(history.transactions)}
    components = [c for c in nx.strongly_connected_components(digraph) if len(c) > 1]
    components.sort(key=lambda c: min(rank[t] for t in c))
    found: list[tuple[AnomalyName, tuple[Edge, ...]]] = []
    for component in components:
        best: dict[AnomalyName, tuple[tuple, tuple[Edge, ...]]] = {}
        sub = digraph.subgraph(component).copy()  # a copy: a view re-filters on every look (networkx)
        for cycle in (_told(c, rank) for search in SEARCHES for c in _searched(sub, search)):
            kind = name(cycle, history)
            score = (len(cycle), tuple(rank[e.source] for e in cycle), tuple(e.kind for e in cycle))
            if kind not in best or score < best[kind][0]:
                best[kind] = (score, cycle)
        found.extend((kind, best[kind][1]) for kind in ORDER if kind in best)
    return found


def _searched(sub: nx.DiGraph, search: Search) -> Iterator[tuple[Edge, ...]]:
    """The shortest simple cycle through each edge the search may start from."""
    states = _states(sub, search.allowed)
    paths: dict[State, dict[State, list[State]]] = {}  # one breadth-first search per start
    for _, _, arc in sub.edges(data="edges"):
        for first in arc:
            if (first.kind, first.predicate) not in search.first:
                continue
            start: State = (first.target, False, False)
            if start not in paths:
                paths[start] = nx.single_source_shortest_path(states, start) if start in states else {}
            goals = [(first.source, rw, predicate) for rw in (True, False) for predicate in (True, False)
                     if (rw or not search.more_rw) and (predicate or first.predicate or not search.predicate)]
            reached = [paths[start][g] for g in goals if g in paths[start] and g != start]
            if not reached:
                continue
            path = min(reached, key=len)
            way = tuple(states[a][b]["edge"] for a, b in zip(path, path[1:]))
            if len({e.source for e in (first, *way)}) == 1 + len(way):
                yield (first, *way)


def _states(sub: nx.DiGraph, allowed: frozenset[tuple[EdgeKind, bool]]) -> nx.DiGraph:
    """The graph of States over the allowed edges; each arc keeps its first edge (the earliest
    evidence)."""
    states = nx.DiGraph()
    for source, target, arc in sub.edges(data="edges"):
        for edge in arc:
            if (edge.kind, edge.predicate) not in allowed:
                continue
            for rw in (False, True):
                for predicate in (False, True):
                    here: State = (source, rw, predicate)
                    there: State = (target, rw or edge.kind == "rw", predicate or (edge.kind, edge.predicate) == PREDICATE_RW)
                    if not states.has_edge(here, there):
                        states.add_edge(here, there, edge=edge)
    return states


def _told(cycle: tuple[Edge, ...], rank: dict[str, int]) -> tuple[Edge, ...]:
    """The cycle told from its anti-dependency whose reader began first (the edge a serial
    order cannot explain away, as Elle tells it), else from its first transaction."""
    rws = [i for i, e in enumerate(cycle) if e.kind == "rw"]
    start = min(rws or range(len(cycle)), key=lambda i: rank[cycle[i].source])
    return cycle[start:] + cycle[:start]


def intermediate_reads(history: History, edges: tuple[Edge, ...]) -> list[Edge]:
    """The wr edges of G1b: a committed transaction read a version another committed
    transaction later overwrote itself (Adya's G1b, "intermediate reads")."""
    last: dict[tuple[str, str], int] = {}
    for version in history.writes:
        last[(version.object, version.writer)] = version.number
    found = []
    for read in history.reads:
        version = read.version
        if version is None or version.writer in (None, read.transaction):
            continue
        if last[(version.object, version.writer)] > version.number:
            found.extend(e for e in edges if e.kind == "wr" and not e.predicate and e.target == read.transaction
                         and e.source == version.writer and e.object == version.object and read.step in e.steps)
    return list(dict.fromkeys(found))
