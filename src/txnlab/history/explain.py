"""An anomaly in words, in the order of Elle's explanations (Kingsbury and Alvaro, "Elle",
2020): name the transactions ("Let ..."), give each edge and the order it forces ("Then ...",
"And ..."), the last edge closes the cycle ("However ..."), so the history has no serial
order ("a contradiction"). One sentence a line, in the scenario's session and step names.
The edges that rest on a read matched to a version by its values, or on a snapshot's moment
(Edge.inferred), are named in the first line ("Let a and b be committed transactions (b < a
is inferred, not observed)."): the words never present them as observed, and the ATM's lost
update still fits five lines on a projector. An edge not named there rests on the trigger's
log alone.
"""

from __future__ import annotations

from txnlab.history.classify import WEAKEST_VIOLATED
from txnlab.history.model import AnomalyName, Edge

# After a G1b's read matched to a version by its values (Edge.inferred).
INFERRED = " (inferred)"
WHAT: dict[AnomalyName, str] = {
    "G0": "a write cycle (G0)",
    "G1a": "an aborted read (G1a)",
    "G1b": "an intermediate read (G1b)",
    "G1c": "a circular information flow (G1c)",
    "lost update": "a lost update (G-single)",
    "G-single": "a single anti-dependency cycle (G-single)",
    "G2-item": "an item anti-dependency cycle (G2-item, write skew)",
    "G2": "a predicate anti-dependency cycle (G2)",
}


def explain(name: AnomalyName, cycle: tuple[Edge, ...], clauses: dict[Edge, str],
            began: tuple[str, ...]) -> tuple[str, ...]:
    """The explanation's lines. `clauses` holds each edge's short words (history/graph.py);
    `began` is every transaction id in the order they began (the order "Let" names them)."""
    level = WEAKEST_VIOLATED[name].value
    if name == "G1b":
        edge = cycle[0]
        return (f"{clauses[edge]}{INFERRED if edge.inferred else ''}, a version {edge.source} itself overwrote "
                "before it committed.",
                f"So {edge.target} saw {edge.source}'s intermediate state: {WHAT[name]}, which {level} forbids.")
    transactions = sorted({e.source for e in cycle}, key=began.index)
    inferred = list(dict.fromkeys(f"{e.source} < {e.target}" for e in cycle if e.inferred))
    said = f" ({_and(inferred)} {'is' if len(inferred) == 1 else 'are'} inferred, not observed)" if inferred else ""
    lines = [f"Let {_and(transactions)} be committed transactions{said}."]
    for index, edge in enumerate(cycle):
        word = "Then" if index == 0 else "However" if index == len(cycle) - 1 else "And"
        lines.append(f"{word} {edge.source} < {edge.target}: {clauses[edge]}.")
    lines.append(f"A contradiction: {WHAT[name]}, which {level} forbids.")
    return tuple(lines)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
