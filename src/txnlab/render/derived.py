"""Words for a run's derived anomalies (txnlab.history), shared by the text, workshop, Markdown
and HTML renderers: the heading, each anomaly's title, the line for a serializable history, and
one line for each thing the history could not place (ambiguous and unmatched reads, the
capture's gaps), which are never hidden."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from txnlab.history.coverage import PYTHON_CODE
from txnlab.history.model import Analysis, DerivedAnomaly, Read
from txnlab.levels import Level
from txnlab.render.describe import level_label, row_label
from txnlab.render.report import RunReport

HEADING = "Derived from what each transaction read and wrote:"
NO_CYCLE = "no cycle: this history is serializable as far as it was observed"
MATRIX_HEADING = "Cycles derived from each run's history:"
MATRIX_NONE = "no run's history has a cycle: each is serializable as far as it was observed"


@dataclass(frozen=True)
class DerivedAnomalies:
    """What every view shows after a run's verdict: the anomalies (each a title and its
    explanation, one sentence a line), else `no_cycle` (NO_CYCLE only when nothing went
    unseen, see `no_cycle_line`), then the caveats, one line each."""

    anomalies: tuple[tuple[str, tuple[str, ...]], ...]
    caveats: tuple[str, ...]
    no_cycle: str = NO_CYCLE


def anomaly_title(anomaly: DerivedAnomaly) -> str:
    """The anomaly's name, its transactions around the cycle and the weakest level that
    forbids it: "lost update (atm1 → atm2 → atm1): forbidden at repeatable read and above";
    a G1b's single read: "G1b (a → b): forbidden at read committed and above"."""
    around = [*anomaly.transactions, anomaly.cycle[-1].target] if anomaly.cycle else []
    cycle = f" ({' → '.join(around)})" if around else ""
    level = anomaly.weakest_violated
    above = "" if level is Level.SERIALIZABLE else " and above"
    return f"{anomaly.name}{cycle}: forbidden at {level.value}{above}"


def derived(report: RunReport) -> DerivedAnomalies | None:
    """The run's derived anomalies in words; None when the run recorded no history (a `.spec`
    run, `--no-history`, a run that could not run), which every view then leaves out."""
    analysis = report.analysis
    if analysis is None:
        return None
    return DerivedAnomalies(
        tuple((anomaly_title(a), a.explanation) for a in analysis.anomalies),
        tuple(caveat_lines(analysis)),
        no_cycle_line(analysis),
    )


def caveat_lines(analysis: Analysis) -> list[str]:
    """What the history could not place, one short line each: the reads that match several
    versions (no edge is drawn from them) and those that match none, each kind in one line
    however many rows (from History.reads), each read no record holds (History.unrecorded;
    the Python steps' in one line), then every gap of the capture and of the derivation (see docs/history.md, "What is not
    observed")."""
    reads = analysis.history.reads
    ambiguous = [r for r in reads if len(r.candidates) > 1]
    unmatched = [r for r in reads if not r.candidates]
    lines = []
    if ambiguous:
        lines.append(f"ambiguous (equal values in several versions, so no edge): {_reads_phrase(ambiguous)}")
    if unmatched:
        lines.append(f"unmatched (no version its snapshot could see has these values): {_reads_phrase(unmatched)}")
    python = [u.step for u in analysis.history.unrecorded if u.table is None and u.how == PYTHON_CODE]
    lines += [u.sentence for u in analysis.history.unrecorded if u.step not in python]
    if python:
        lines.append(f"{', '.join(python)} ran Python code: what {'it' if len(python) == 1 else 'they'} read is "
                     "not recorded, so a cycle through it cannot be seen")
    return lines + [f"not observed: {gap}" for gap in analysis.history.gaps]


def blind_spots(analysis: Analysis) -> list[str]:
    """What could hide a cycle, counted: "2 reads not recorded", "1 ambiguous read", "1
    unmatched read", "1 other gap"; [] when the history saw everything it could."""
    counts = (*_read_spots(analysis), (len(analysis.history.gaps), "other gap", "other gaps"))
    return [f"{n} {one if n == 1 else many}" for n, one, many in counts if n]


def _read_spots(analysis: Analysis) -> tuple[tuple[int, str, str], ...]:
    """The reads no edge could come from, counted by (step, table): not recorded, ambiguous, unmatched."""
    reads = analysis.history.reads
    return (
        (len(analysis.history.unrecorded), "read not recorded", "reads not recorded"),
        (len({(r.step, r.table) for r in reads if len(r.candidates) > 1}), "ambiguous read", "ambiguous reads"),
        (len({(r.step, r.table) for r in reads if not r.candidates}), "unmatched read", "unmatched reads"),
    )


def no_cycle_line(analysis: Analysis) -> str:
    """The words for a history with no cycle: NO_CYCLE when nothing went unseen, else "no
    cycle among what was observed; not observed: 2 reads not recorded, 1 other gap (below)"
    -- never "serializable" while something went unseen."""
    spots = blind_spots(analysis)
    if not spots:
        return NO_CYCLE
    return f"no cycle among what was observed; not observed: {', '.join(spots)} (below)"


def _reads_phrase(reads: Sequence[Read]) -> str:
    """"atm1_read (accounts), b2 (t)": each read's step and table, once each."""
    return ", ".join(dict.fromkeys(f"{r.step} ({r.table})" for r in reads))


def matrix_lines(reports: Sequence[RunReport], label: Callable[[RunReport], str]) -> tuple[str, list[str]] | None:
    """Under a matrix: a heading and one line per anomaly of each run whose history has a
    cycle ("atm-lost-update at read committed: lost update (atm1 → atm2 → atm1): forbidden
    at ..."), one per run with no cycle but reads no edge could come from ("... at
    serializable: no cycle among what was observed; not observed: 1 read not recorded"), and
    one line counting the runs with no cycle whose only gaps are the history's others (a
    table without a primary key, a transaction that did not commit): each cell's would repeat
    them on a projector, and `txnlab run` lists them. `label` names a run; MATRIX_NONE and no
    lines when no run has any of these; None when no run recorded a history."""
    recorded = [(r, r.analysis) for r in reports if r.analysis is not None]
    if not recorded:
        return None
    lines, other_gaps_only = [], 0
    for report, analysis in recorded:
        lines += [f"{label(report)}: {anomaly_title(a)}" for a in analysis.anomalies]
        if analysis.anomalies or not (spots := blind_spots(analysis)):
            continue
        if any(n for n, _, _ in _read_spots(analysis)):
            lines.append(f"{label(report)}: no cycle among what was observed; not observed: {', '.join(spots)}")
        else:
            other_gaps_only += 1
    if other_gaps_only:
        runs = "1 other run" if other_gaps_only == 1 else f"{other_gaps_only} other runs"
        lines.append(f"{runs}: no cycle among what was observed, with gaps `txnlab run` lists"
                     " (a table without a primary key, a transaction that did not commit...)")
    return (MATRIX_HEADING, lines) if lines else (MATRIX_NONE, [])


def cell_label(report: RunReport) -> str:
    """A matrix cell named in words: "atm-lost-update at read committed"."""
    return f"{row_label(report)} at {level_label(report)}"
