"""A run's history in Elle's rw-register form, so that Elle (jepsen-io/elle, through elle-cli) or
IsoVista can check it independently of txnlab's own analysis (docs/history.md, "Export").

The form is Jepsen's history of operations (elle-cli reads it as JSON): one `invoke` and one
completion per transaction, `f` "txn", `value` a list of micro-operations `["r", key, value]` and
`["w", key, value]`, `process` (here the session's place in the scenario), `time` (ns since the
run started) and `index` (the operation's place in the history). A completion is `ok` for a
committed transaction, `fail` for one that rolled back, `info` for one the run left open.

A transaction of a connection that is no session's (a pool's, an engine's: "pid 812") gets a
process of its own, numbered after the sessions' (one per transaction: their order within the
connection is not known). Its steps are not on the timeline, so when it ran is not known: it is
invoked at the run's start and completes at its end, concurrent with every other operation, so
it adds no real-time order Elle could wrongly rely on.

rw-register wants every write of a key to write a value no other write of that key wrote, so
each write writes its version's number (1, 2, ... per object), and a read reads the number of
the version it was matched to; the setup's versions read as null, as Elle's initial state.
What txnlab does not know is left out, never guessed: the writes of a transaction that rolled
back (the trigger's log is transactional), the reads that match several versions or none, and
the reads it does not record (history/coverage.py: aggregates, subqueries, self-joins...).
A read matched to exactly one version is exported although the match may be inferred from its
values (Edge.inferred): Elle itself infers which write a read saw from the value it returned,
and here every exported value names one version only (unique per key), so the inference Elle
would make is the one txnlab made; an ambiguous read is never exported.
"""

from __future__ import annotations

import json
from typing import Any

from txnlab.history.model import Analysis, Transaction, VersionRef
from txnlab.timeline import Timeline

MicroOp = list[Any]  # ["r", key, value] or ["w", key, value]
COMPLETIONS = {"committed": "ok", "aborted": "fail", "unfinished": "info"}


def _value(version: VersionRef) -> int | None:
    """The version as a register's value: its number, the setup's (0) as null."""
    return version.number or None


def micro_ops(transaction: Transaction, analysis: Analysis) -> list[MicroOp]:
    """The transaction's reads and writes in the order its steps made them: in each step, its
    reads of other transactions' versions, then its writes (in the log's order), then its reads
    of its own writes (an UPDATE ... RETURNING returns the row it wrote). Reads that match
    several versions or none are left out."""
    history = analysis.history
    reads = [r for r in history.reads if r.transaction == transaction.id and r.version is not None]
    writes = sorted((v for v in history.versions if v.writer == transaction.id), key=lambda v: v.seq or 0)
    ops: list[MicroOp] = []
    for step in transaction.steps:
        mine = [r.version for r in reads if r.step == step and r.version is not None]
        ops += [["r", v.object, _value(v)] for v in mine if v.writer != transaction.id]
        ops += [["w", v.object, _value(v)] for v in writes if v.step == step]
        ops += [["r", v.object, _value(v)] for v in mine if v.writer == transaction.id]
    ops += [["w", v.object, _value(v)] for v in writes if v.step not in transaction.steps]  # step unknown: last
    return ops


def _span(transaction: Transaction, timeline: Timeline) -> tuple[int, int]:
    """When the transaction's first step was sent and its last step's result came, in ns since
    the run started."""
    events = [e for step in transaction.steps for e in timeline.step_events(step)]
    if not events:
        return 0, 0
    return round(min(e.started for e in events) * 1e9), round(max(e.ended for e in events) * 1e9)


def _whole_run(timeline: Timeline) -> tuple[int, int]:
    """The run from its start to its last event's result, in ns."""
    return 0, round(max((e.ended for e in timeline.events), default=0.0) * 1e9)


def elle_history(analysis: Analysis, timeline: Timeline) -> list[dict[str, Any]]:
    """The run's history as Elle's operations, in time order (see the module docstring)."""
    happenings: list[tuple[int, int, dict[str, Any]]] = []
    sessions = list(timeline.sessions)
    others = 0  # transactions of connections that are no session's ("pid 812")
    for transaction in analysis.history.transactions:
        ops = micro_ops(transaction, analysis)
        if transaction.session in sessions:
            process = sessions.index(transaction.session)
            start, end = _span(transaction, timeline)
        else:
            process, others = len(sessions) + others, others + 1
            start, end = _whole_run(timeline)
        invoked = [[op[0], op[1], op[2] if op[0] == "w" else None] for op in ops]
        happenings.append((start, 1, {"type": "invoke", "f": "txn", "value": invoked, "process": process, "time": start}))
        completion = COMPLETIONS[transaction.outcome]
        happenings.append((end, 0, {"type": completion, "f": "txn", "value": ops, "process": process, "time": end}))
    ordered = sorted(happenings, key=lambda h: (h[0], h[1]))
    return [{**op, "index": index} for index, (_, _, op) in enumerate(ordered)]


def render_elle(analysis: Analysis, timeline: Timeline) -> str:
    """`txnlab run NAME --level L --format elle`: the history as a JSON array, one operation a line."""
    return "[" + ",\n ".join(json.dumps(op) for op in elle_history(analysis, timeline)) + "]\n"
