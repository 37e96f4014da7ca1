"""Stage 4 of the pipeline: compare a timeline with the scenario's expectations.

A verdict is derived from what the server did, never copied from the expectation:
which steps blocked, which failed with which SQLSTATE, what the reads returned,
whether the invariants held, and so whether the anomaly happened and what stopped it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from txnlab.levels import Level
from txnlab.scenario.model import Condition, Rows, Scenario
from txnlab.timeline import ErrorInfo, Outcome, Timeline
from txnlab.values import expected_rows_text, rows_text

# SQLSTATE classes by which PostgreSQL refuses to let an anomaly through: transaction
# rollback (40001 serialization failure, 40P01 deadlock) and integrity constraint
# violations (23505 unique, 23514 check, 23P01 exclusion...).
PREVENTING_CLASSES = ("40", "23")


@dataclass(frozen=True)
class Finding:
    """One expectation compared with one observation."""

    subject: str  # e.g. "blocked steps", "rows of atm1_read", "invariant balance_matches_ledger"
    expected: str
    observed: str

    @property
    def ok(self) -> bool:
        return self.expected == self.observed


@dataclass(frozen=True)
class Verdict:
    """The result of checking one run."""

    scenario: str
    level: Level
    findings: tuple[Finding, ...]
    anomaly: str | None  # the anomaly's name, when the scenario defines one
    anomaly_observed: bool | None
    how: str | None  # what prevented it: "blocked", "aborted", or None
    prevented_by: ErrorInfo | None  # when aborted: the error, e.g. 40001 "... read/write dependencies ..."
    ended_early: str | None
    note: str | None
    could_not_run: str | None = None  # the server's reason (one line) when the run never happened

    @property
    def matches_expectation(self) -> bool:
        return self.could_not_run is None and self.ended_early is None and all(f.ok for f in self.findings)

    @property
    def mismatches(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    @property
    def outcome(self) -> str:
        """A short phrase for tables: 'anomaly', 'prevented (aborted)', 'ran', 'could not run'"""
        if self.could_not_run is not None:
            return "could not run"  # the reason is in `could_not_run`, shown below tables
        if self.anomaly_observed is None:
            return "ran"
        if self.anomaly_observed:
            return "anomaly"
        return f"prevented ({self.how})" if self.how else "prevented"


def check(scenario: Scenario, timeline: Timeline) -> Verdict:
    """Compare one run with the scenario's expectation at its level (see `Verdict`)."""
    expectation = scenario.expectations[timeline.level]
    if timeline.could_not_run is not None:
        return Verdict(
            scenario=scenario.name, level=timeline.level, findings=(), anomaly=None, anomaly_observed=None,
            how=None, prevented_by=None, ended_early=None, note=expectation.note, could_not_run=timeline.could_not_run,
        )
    blocked = sorted({e.step for e in timeline.events if e.outcome is Outcome.BLOCKED})
    skipped = sorted({e.step for e in timeline.events if e.outcome is Outcome.SKIPPED})
    failed = _failures(timeline)
    findings = [
        Finding("blocked steps", _names(sorted(expectation.blocked)), _names(blocked)),
        Finding(
            "failed steps",
            _names(f"{step} {code}" for step, code in sorted(expectation.errors.items())),
            _names(f"{step} {code}" for step, code in sorted(failed.items())),
        ),
        Finding("skipped steps", _names(sorted(expectation.skipped)), _names(skipped)),
    ]
    for step, rows in expectation.rows.items():
        findings.append(Finding(f"rows of {step}", *_rows_compared(rows, timeline, step)))
    for step, locks in expectation.holds.items():
        findings.append(Finding(f"locks held after {step}", _names(locks), _held(timeline, step)))
    for name, holds in expectation.invariants.items():
        observed = timeline.invariants.get(name)
        findings.append(Finding(f"invariant {name}", _holds(holds), _holds(observed)))

    observed_anomaly = _anomaly_observed(scenario, timeline)
    prevented_by = _refusal(timeline)
    if expectation.anomaly is not None and observed_anomaly is not None:
        findings.append(
            Finding(
                f"anomaly ({scenario.anomaly.name})" if scenario.anomaly else "anomaly",
                _happened(expectation.anomaly),
                _happened(observed_anomaly),
            )
        )
    return Verdict(
        scenario=scenario.name,
        level=timeline.level,
        findings=tuple(findings),
        anomaly=scenario.anomaly.name if scenario.anomaly else None,
        anomaly_observed=observed_anomaly,
        how=_how_prevented(prevented_by, blocked) if observed_anomaly is False else None,
        prevented_by=prevented_by if observed_anomaly is False else None,
        ended_early=timeline.ended_early,
        note=expectation.note,
    )


def _failures(timeline: Timeline) -> dict[str, str]:
    failed = {}
    for event in timeline.events:
        if event.outcome is Outcome.TIMEOUT:
            failed[event.step] = "timeout"
        elif event.outcome is Outcome.ERROR and event.error is not None:
            failed[event.step] = event.error.sqlstate or event.error.exception
    return failed


def _rows_compared(expected: Rows, timeline: Timeline, step: str) -> tuple[str, str]:
    """(expected, observed) rows of `step` in one value language, equal when they match:
    the server's text of each value, compared exactly (`0.10` is not `0.1`), each expected
    value read as the type of the column it is compared with (see txnlab.values)."""
    event = timeline.final_event(step)
    if event is None:
        observed = "not run"
    elif event.rows is None:
        observed = f"no rows ({event.outcome.value})"
    else:
        observed = rows_text(event.rows, event.column_types)
    return expected_rows_text(expected, event.column_types if event else None), observed


def _held(timeline: Timeline, step: str) -> str:
    """The locks the step's session held right after it, as the runner read them."""
    event = timeline.final_event(step)
    if event is None:
        return "not run"
    return "not read" if event.holds is None else _names(event.holds)


def _anomaly_observed(scenario: Scenario, timeline: Timeline) -> bool | None:
    if scenario.anomaly is None:
        return None
    return all(_condition_holds(c, timeline) for c in scenario.anomaly.observed_if)


def _condition_holds(condition: Condition, timeline: Timeline, anomaly_observed: bool | None = None) -> bool:
    if condition.step is not None:
        if condition.blocked is not None:
            return timeline.was_blocked(condition.step) == condition.blocked
        if condition.error is not None:
            return _failures(timeline).get(condition.step, "none") == condition.error
        expected, observed = _rows_compared(condition.rows or (), timeline, condition.step)
        return expected == observed
    if condition.anomaly is not None:
        return anomaly_observed == condition.anomaly
    return timeline.invariants.get(condition.invariant or "") == condition.holds


def describe_condition(
    condition: Condition, timeline: Timeline, anomaly_observed: bool | None, scenario: Scenario | None = None
) -> str:
    """What the run showed about one condition, in words: the evidence for or against a claim."""
    if condition.step is not None:
        if condition.blocked is not None:
            return f"{condition.step} {'waited' if timeline.was_blocked(condition.step) else 'did not wait'}"
        if condition.error is not None:
            code = _failures(timeline).get(condition.step)
            return f"{condition.step} {'failed with ' + code if code else 'succeeded'}"
        return f"{condition.step} returned {_rows_compared(condition.rows or (), timeline, condition.step)[1]}"
    if condition.anomaly is not None:
        rule = scenario.anomaly if scenario else None
        name = rule.name if rule else "the anomaly"
        facts = "; ".join(describe_condition(c, timeline, anomaly_observed) for c in rule.observed_if) if rule else ""
        return f"{name} {'happened' if anomaly_observed else 'did not happen'}" + (f" ({facts})" if facts else "")
    return f"invariant {condition.invariant} {_holds(timeline.invariants.get(condition.invariant or ''))}"


@dataclass(frozen=True)
class ClaimVerdict:
    """Is the claim true on this server? `as_expected` compares with what the scenario says."""

    scenario: str
    says: str
    source: str | None
    level: Level
    true: bool
    expected: bool
    evidence: tuple[str, ...]

    @property
    def as_expected(self) -> bool:
        return self.true == self.expected


def check_claim(scenario: Scenario, timeline: Timeline) -> ClaimVerdict:
    claim = scenario.claim
    assert claim is not None and timeline.level is claim.level
    observed = _anomaly_observed(scenario, timeline)
    return ClaimVerdict(
        scenario=scenario.name,
        says=claim.says,
        source=claim.source,
        level=claim.level,
        true=all(_condition_holds(c, timeline, observed) for c in claim.true_if),
        expected=claim.holds,
        evidence=tuple(describe_condition(c, timeline, observed, scenario) for c in claim.true_if),
    )


def _refusal(timeline: Timeline) -> ErrorInfo | None:
    """The first error by which the server refused a transaction, if any."""
    for event in timeline.events:
        code = event.error.sqlstate if event.error and event.outcome is Outcome.ERROR else None
        if code and code.startswith(PREVENTING_CLASSES):
            return event.error
    return None


def _how_prevented(refusal: ErrorInfo | None, blocked: list[str]) -> str | None:
    if refusal is not None:
        return "aborted"
    if blocked:
        return "blocked"
    return None


def _names(items: Any) -> str:
    items = list(items)
    return ", ".join(items) if items else "none"


def _holds(value: bool | None) -> str:
    return "not evaluated" if value is None else ("holds" if value else "broken")


def _happened(value: bool) -> str:
    return "happens" if value else "prevented"
