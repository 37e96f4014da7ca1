"""The bench table every format shows: its columns, its cells as text, the lines above and
below it. Formats differ only in how they lay it out (text, Markdown, HTML).

Columns: level, clients, tool (with --pgbench only), tps as the server counted it, the tool's
own tps (only when some run's two counts differ), latency median/p95/p99 in ms, retries,
serialization failures, deadlocks, failed, lock wait in ms, then one column per workload
measure and one per invariant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from txnlab.bench.model import LoadResult
from txnlab.render.bench.report import BenchReport

HOLDS, VIOLATED = "holds", "VIOLATED"
NOT_COUNTED = "n/a"  # the server has no per-database commit counter
EMPTY = "-"  # nothing to show: no committed transaction to time, or a measure this run lacks

TPS_FOOTNOTE = (
    "tps server: transactions committed per second as the server counted them (pg_stat_database.xact_commit "
    "over the measured window), not the tool's own tally"
)
CLIENT_TPS_FOOTNOTE = "tps client: the tool's own count of its commits; the notes say why it differs"
NOT_COUNTED_FOOTNOTE = (
    f"{NOT_COUNTED}: this server has no per-database commit counter; see tps client (docs/bench.md)"
)
LOCK_WAIT_FOOTNOTE = (
    "lock wait: sampled from pg_locks, so a lower bound (a wait between two samples is missed, "
    "and each wait counts up to its last sample)"
)
LATENCY_FOOTNOTE = "median, p95, p99: latency of the committed transactions, from the first try's start to the commit, retries included"
FAILURES_FOOTNOTE = (
    "serialization failures, deadlocks: every 40001 and 40P01 error met, each one either retried (retries) or the "
    "last try of a transaction given up (failed)"
)


@dataclass(frozen=True)
class Column:
    """One column: its header as lines (text stacks them, Markdown and HTML join them with a
    space), its cell for a result, and whether it holds numbers (aligned right)."""

    header: tuple[str, ...]
    cell: Callable[[LoadResult], str]
    numeric: bool = True
    name: str | None = None  # a measure's or invariant's own name, which Markdown and HTML show as is

    @property
    def title(self) -> str:
        return self.name or " ".join(self.header)


def columns(report: BenchReport) -> list[Column]:
    """The columns this report shows, in order (see the module's docstring)."""
    results = report.results
    shown: list[Column] = [
        Column(("level",), lambda r: r.level.value, numeric=False),
        Column(("clients",), lambda r: str(r.clients)),
    ]
    if report.with_pgbench:
        shown.append(Column(("tool",), lambda r: r.tool, numeric=False))
    shown.append(Column(("tps", "server"), lambda r: NOT_COUNTED if r.tps is None else number(r.tps)))
    if client_count_differs(results):
        shown.append(Column(("tps", "client"), lambda r: number(r.tps_client)))
    shown += [
        Column(("median", "ms"), lambda r: _latency(r, "median_ms")),
        Column(("p95", "ms"), lambda r: _latency(r, "p95_ms")),
        Column(("p99", "ms"), lambda r: _latency(r, "p99_ms")),
        Column(("retries",), lambda r: count(r.retries)),
        Column(("serialization", "failures"), lambda r: count(r.serialization_failures)),
        Column(("deadlocks",), lambda r: count(r.deadlocks)),
        Column(("failed",), lambda r: count(r.failed)),
        Column(("lock wait", "ms"), lambda r: number(r.lock_wait_ms)),
    ]
    shown += [Column(_stacked(name), lambda r, name=name: _measure(r, name), name=name)
              for name in measure_names(results)]
    shown += [Column(_stacked(name), lambda r, name=name: _invariant(r, name), numeric=False, name=name)
              for name in invariant_names(results)]
    return shown


def rows(report: BenchReport) -> list[list[str]]:
    """One row of cells per result, in the results' order."""
    shown = columns(report)
    return [[column.cell(result) for column in shown] for result in report.results]


def heading(report: BenchReport) -> str:
    """The table's title: the scenario's title and name."""
    return f"{report.scenario.title} ({report.scenario.name})"


def meta_line(report: BenchReport) -> str:
    """What was run, on one line: the server, how long each run lasted, the retries."""
    plan = report.plan
    length = (f"{plan.duration_s:g} s per run" if plan.duration_s is not None
              else f"{plan.transactions} transactions per client per run")
    retries = "no retries" if plan.retries == 0 else f"up to {plan.retries} retries on 40001 and 40P01"
    seed = f" · seed {plan.seed}" if plan.seed is not None else ""
    beside = f" · beside {report.pgbench}" if report.pgbench else ""
    return f"PostgreSQL {report.server_version} · {length} · {retries}{seed}{beside}"


def footnotes(report: BenchReport) -> list[str]:
    """The honest labels, each said once: what tps counts, the client count when shown, n/a
    when some run had no server count, what latency spans, why lock wait is a lower bound."""
    results = report.results
    notes = [TPS_FOOTNOTE]
    if client_count_differs(results):
        notes.append(CLIENT_TPS_FOOTNOTE)
    if any(r.tps is None for r in results):
        notes.append(NOT_COUNTED_FOOTNOTE)
    return [*notes, LATENCY_FOOTNOTE, FAILURES_FOOTNOTE, LOCK_WAIT_FOOTNOTE]


def note_lines(report: BenchReport) -> list[str]:
    """Each result's notes (LoadResult.notes), prefixed with the run they belong to."""
    return [f"{run_label(r, report.with_pgbench)}: {note}" for r in report.results for note in r.notes]


def run_label(result: LoadResult, with_tool: bool) -> str:
    """`read committed · 8 clients` (and `· pgbench` when tools are compared)."""
    clients = f"{result.clients} client{'s' if result.clients != 1 else ''}"
    return " · ".join([result.level.value, clients, *([result.tool] if with_tool else [])])


def violated(result: LoadResult) -> bool:
    """Whether any invariant failed after this run."""
    return not all(result.invariants.values())


def client_count_differs(results: Sequence[LoadResult]) -> bool:
    """Whether some run's own count of commits differs from the server's (or the server had none)."""
    return any(r.committed_server != r.committed_client for r in results)


def measure_names(results: Sequence[LoadResult]) -> list[str]:
    """Every measure some result has, in the order first seen."""
    return list(dict.fromkeys(name for r in results for name in r.measures))


def invariant_names(results: Sequence[LoadResult]) -> list[str]:
    """Every invariant some result has, in the order first seen."""
    return list(dict.fromkeys(name for r in results for name in r.invariants))


def number(value: float) -> str:
    """A measured figure at a precision a projector can show: 1,234 · 56.7 · 8.91."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def count(value: int) -> str:
    return f"{value:,}"


def _stacked(name: str) -> tuple[str, ...]:
    """A snake_case name as header lines, one word each (`lost_updates` as lost / updates)."""
    return tuple(name.split("_")) if "_" in name.strip("_") else (name,)


def _latency(result: LoadResult, field: str) -> str:
    return EMPTY if result.latency is None else number(getattr(result.latency, field))


def _measure(result: LoadResult, name: str) -> str:
    if name not in result.measures:
        return EMPTY
    value = result.measures[name]
    return count(int(value)) if float(value).is_integer() else number(value)


def _invariant(result: LoadResult, name: str) -> str:
    if name not in result.invariants:
        return EMPTY
    return HOLDS if result.invariants[name] else VIOLATED
