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
from itertools import product

import networkx as nx

from txnlab.history.model import AnomalyName, Edge, History
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
LONGEST_CYCLE = 6  # transactions; the catalogue's cycles have two or three


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


def shortest_cycles(digraph: nx.DiGraph, history: History) -> list[tuple[AnomalyName, tuple[Edge, ...]]]:
    """For each strongly connected component (in the order its first transaction began), the
    shortest cycle of each kind, in ORDER: one per kind, ties broken by the order in which
    its transactions began and then the edges' kinds; told from its first rw edge."""
    rank = {t.id: i for i, t in enumerate(history.transactions)}
    components = [c for c in nx.strongly_connected_components(digraph) if len(c) > 1]
    components.sort(key=lambda c: min(rank[t] for t in c))
    found: list[tuple[AnomalyName, tuple[Edge, ...]]] = []
    for component in components:
        best: dict[AnomalyName, tuple[tuple, tuple[Edge, ...]]] = {}
        sub = digraph.subgraph(component)
        for cycle in _cycles(sub, rank):
            kind = name(cycle, history)
            score = (len(cycle), tuple(rank[e.source] for e in cycle), tuple(e.kind for e in cycle))
            if kind not in best or score < best[kind][0]:
                best[kind] = (score, cycle)
        found.extend((kind, _from_first_rw(best[kind][1])) for kind in ORDER if kind in best)
    return found


def _from_first_rw(cycle: tuple[Edge, ...]) -> tuple[Edge, ...]:
    """The cycle told from its first anti-dependency, the edge a serial order cannot explain
    away (as Elle tells it); unchanged when it has none."""
    start = next((i for i, e in enumerate(cycle) if e.kind == "rw"), 0)
    return cycle[start:] + cycle[:start]


def _cycles(sub: nx.DiGraph, rank: dict[str, int]) -> Iterator[tuple[Edge, ...]]:
    """Every simple cycle up to LONGEST_CYCLE transactions, with each choice of edge kind per
    arc (one edge per kind and arc: the first found, which is the earliest evidence)."""
    for nodes in nx.simple_cycles(sub, length_bound=LONGEST_CYCLE):
        start = min(range(len(nodes)), key=lambda i: rank[nodes[i]])
        nodes = nodes[start:] + nodes[:start]
        arcs = []
        for source, target in zip(nodes, nodes[1:] + nodes[:1]):
            choices: dict[tuple[str, bool], Edge] = {}
            for edge in sub[source][target]["edges"]:
                choices.setdefault((edge.kind, edge.predicate), edge)
            arcs.append(list(choices.values()))
        yield from product(*arcs)


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
