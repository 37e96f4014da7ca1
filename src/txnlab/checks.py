"""Stage 4 of the pipeline: compare a timeline with the scenario's expectations.

A verdict is derived from what the server did, never copied from the expectation:
which steps blocked, which failed with which SQLSTATE, what the reads returned,
whether the invariants held, and so whether the anomaly happened and what stopped it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from txnlab.levels import Level
from txnlab.scenario.model import Condition, Expectation, Scenario
from txnlab.timeline import ErrorInfo, Outcome, Timeline

# SQLSTATE classes by which PostgreSQL refuses to let an anomaly through: transaction
# rollback (40001 serialization failure, 40P01 deadlock) and integrity constraint
# violations (23505 unique, 23514 check, 23P01 exclusion...).
PREVENTING_CLASSES = ("40", "23")


@dataclass(frozen=True)
class Finding:
    """One expectation compared with one observation.

    Most expectations are exact, so the finding is ok when the two phrases are equal;
    one that is not (a text an error's DETAIL or a notice must contain) sets `satisfied`."""

    subject: str  # e.g. "blocked steps", "rows of atm1_read", "invariant balance_matches_ledger"
    expected: str
    observed: str
    satisfied: bool | None = None

    @property
    def ok(self) -> bool:
        return self.expected == self.observed if self.satisfied is None else self.satisfied


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
    alternative: str | None = None  # the accepted alternative the run matched, if not the expectation itself
    # When nothing matched: each accepted alternative's name and what differs from it too.
    alternatives_missed: tuple[tuple[str, tuple[Finding, ...]], ...] = ()

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
    observed_anomaly = _anomaly_observed(scenario, timeline)
    chosen, findings = expectation, _findings(scenario, expectation, timeline, observed_anomaly)
    missed: list[tuple[str, tuple[Finding, ...]]] = []
    if not all(f.ok for f in findings):
        for alternative in expectation.alternatives:
            alt_findings = _findings(scenario, alternative, timeline, observed_anomaly)
            if all(f.ok for f in alt_findings):
                chosen, findings, missed = alternative, alt_findings, []
                break
            missed.append((alternative.name or "", tuple(f for f in alt_findings if not f.ok)))
    prevented_by = _refusal(timeline)
    return Verdict(
        scenario=scenario.name,
        level=timeline.level,
        findings=tuple(findings),
        anomaly=scenario.anomaly.name if scenario.anomaly else None,
        anomaly_observed=observed_anomaly,
        how=_how_prevented(prevented_by, blocked) if observed_anomaly is False else None,
        prevented_by=prevented_by if observed_anomaly is False else None,
        ended_early=timeline.ended_early,
        note=chosen.note,
        alternative=chosen.name,
        alternatives_missed=tuple(missed),
    )


def _findings(
    scenario: Scenario, expectation: Expectation, timeline: Timeline, observed_anomaly: bool | None
) -> list[Finding]:
    """Each fact the expectation states, compared with what the run shows."""
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
    for step, sessions in expectation.blocked_by.items():
        findings.append(Finding(f"{step} waited for", _names(sorted(sessions)), _first_blockers(timeline, step)))
    for step, text in expectation.error_details.items():
        findings.append(_detail_finding(timeline, step, text))
    for step, rows in expectation.rows.items():
        findings.append(Finding(f"rows of {step}", _rows(rows), _rows(_observed_rows(timeline, step))))
    for step, count in expectation.rowcount.items():
        findings.append(Finding(f"rowcount of {step}", str(count), _observed_rowcount(timeline, step)))
    for step, texts in expectation.notices.items():
        findings.append(_notices_finding(timeline, step, texts))
    for name, holds in expectation.invariants.items():
        observed = timeline.invariants.get(name)
        findings.append(Finding(f"invariant {name}", _holds(holds), _holds(observed)))
    if expectation.anomaly is not None and observed_anomaly is not None:
        findings.append(
            Finding(
                f"anomaly ({scenario.anomaly.name})" if scenario.anomaly else "anomaly",
                _happened(expectation.anomaly),
                _happened(observed_anomaly),
            )
        )
    return findings


def _first_blockers(timeline: Timeline, step: str) -> str:
    """The sessions a step waited for when its wait was first detected (its first BLOCKED
    event; later events may record its blocker changing), or that it did not wait."""
    waits = [e for e in timeline.step_events(step) if e.outcome is Outcome.BLOCKED]
    if not waits:
        return "did not wait"
    return _names(sorted(waits[0].blocked_by)) if waits[0].blocked_by else "no session of the run"


def _detail_finding(timeline: Timeline, step: str, text: str) -> Finding:
    """Does the step's error carry a DETAIL containing `text` (case-sensitive)?"""
    event = timeline.final_event(step)
    error = event.error if event is not None and event.outcome is Outcome.ERROR else None
    if error is None:
        observed = "no error" if event is not None else "not run"
    else:
        observed = repr(error.detail) if error.detail else "no DETAIL"
    satisfied = error is not None and error.detail is not None and text in error.detail
    return Finding(f"error detail of {step}", f"containing {text!r}", observed, satisfied=satisfied)


def _one_spaced(text: str) -> str:
    return " ".join(text.split())


def _observed_rowcount(timeline: Timeline, step: str) -> str:
    event = timeline.final_event(step)
    if event is None:
        return "not run"
    if event.rowcount is None or event.rowcount < 0:
        return f"no row count ({event.outcome.value})"
    return str(event.rowcount)


def _notices_finding(timeline: Timeline, step: str, texts: tuple[str, ...]) -> Finding:
    """One notice per expected text, in order, each containing its text (runs of whitespace
    count as one space: the server pads `NOTICE:  ...` with two)."""
    event = timeline.final_event(step)
    notices = [_one_spaced(n) for n in event.notices] if event is not None else []
    wanted = [_one_spaced(t) for t in texts]
    satisfied = event is not None and len(notices) == len(wanted) and all(t in n for t, n in zip(wanted, notices))
    expected = _names(f"one containing {t!r}" for t in wanted)
    observed = "not run" if event is None else _names(repr(n) for n in notices)
    return Finding(f"notices of {step}", expected, observed, satisfied=satisfied)


def _failures(timeline: Timeline) -> dict[str, str]:
    failed = {}
    for event in timeline.events:
        if event.outcome is Outcome.TIMEOUT:
            failed[event.step] = "timeout"
        elif event.outcome is Outcome.ERROR and event.error is not None:
            failed[event.step] = event.error.sqlstate or event.error.exception
    return failed


def _observed_rows(timeline: Timeline, step: str) -> Any:
    event = timeline.final_event(step)
    if event is None:
        return "not run"
    if event.rows is None:
        return f"no rows ({event.outcome.value})"
    return event.rows


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
        return _rows(_observed_rows(timeline, condition.step)) == _rows(condition.rows)
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
        return f"{condition.step} returned {_rows(_observed_rows(timeline, condition.step))}"
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


def _rows(rows: Any) -> str:
    if isinstance(rows, str):
        return rows
    return repr([list(r) for r in rows])


def _holds(value: bool | None) -> str:
    return "not evaluated" if value is None else ("holds" if value else "broken")


def _happened(value: bool) -> str:
    return "happens" if value else "prevented"
