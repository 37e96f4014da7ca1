"""Stage 4 of the pipeline: compare a timeline with the scenario's expectations.

A verdict is derived from what the server did, never copied from the expectation:
which steps blocked, which failed with which SQLSTATE, what the reads returned,
whether the invariants held, and so whether the anomaly happened and what stopped it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from txnlab.levels import Level
from txnlab.scenario.model import Condition, Expectation, Rows, Scenario
from txnlab.timeline import SPEC_STOPS, ErrorInfo, Event, Outcome, Timeline, wire_text
from txnlab.values import expected_rows_text, rows_text

# SQLSTATE classes by which PostgreSQL refuses to let an anomaly through: transaction
# rollback (40001 serialization failure, 40P01 deadlock) and integrity constraint
# violations (23505 unique, 23514 check, 23P01 exclusion...).
PREVENTING_CLASSES = ("40", "23")
FAILED_STEPS = "failed steps"  # the subject of the finding on which steps failed, with which SQLSTATE
# Levels at which each statement takes a new snapshot, so a wait in an earlier statement of
# the transaction can change what a later one sees (at REPEATABLE READ and SERIALIZABLE the
# snapshot is taken once, at the transaction's first statement).
STATEMENT_SNAPSHOT_LEVELS = (Level.READ_UNCOMMITTED, Level.READ_COMMITTED)


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
    how: str | None  # what prevented it: "aborted", "blocked", "snapshot", or None (see `how_prevented`)
    prevented_by: ErrorInfo | None  # when aborted: the refusal, e.g. 40001 "... read/write dependencies ..."
    ended_early: str | None
    note: str | None
    could_not_run: str | None = None  # the server's reason (one line) when the run never happened
    # When exactly the expected steps failed, those that failed with another SQLSTATE than
    # expected: (step, expected, observed), e.g. ("bob_commit", "40001", "40P01").
    sqlstate_changes: tuple[tuple[str, str, str], ...] = ()
    alternative: str | None = None  # the accepted alternative the run matched, if not the expectation itself
    # When nothing matched: each accepted alternative's name and what differs from it too.
    alternatives_missed: tuple[tuple[str, tuple[Finding, ...]], ...] = ()
    # Why no expectation applies to this run (see `no_expectation`); then nothing was judged.
    unjudged: str | None = None

    @property
    def matches_expectation(self) -> bool:
        return self.could_not_run is None and self.ended_early is None and all(f.ok for f in self.findings)

    @property
    def differs(self) -> bool:
        """An expectation applies to the run and the run does not match it (exit 1's cause)."""
        return self.unjudged is None and not self.matches_expectation

    @property
    def mismatches(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    @property
    def only_sqlstates_differ(self) -> bool:
        """The run did what was expected, except that a step failed with another SQLSTATE."""
        return bool(self.sqlstate_changes) and self.ended_early is None and [
            f.subject for f in self.mismatches
        ] == [FAILED_STEPS]

    @property
    def outcome(self) -> str:
        """A short phrase for tables: 'anomaly', 'prevented (snapshot)', 'prevented (aborted)',
        'ran', 'timed out', 'setup failed', 'session lost', 'could not run'"""
        if self.could_not_run is not None:
            return "could not run"  # the reason is in `could_not_run`, shown below tables
        if self.ended_early in SPEC_STOPS:
            return self.ended_early  # a .spec stopped as isolationtester stops: setup failed, session lost
        if self.ended_early is not None:
            return "timed out"  # the step timeout stopped the run: what it would have done is unknown
        if self.anomaly_observed is None:
            return "ran"
        if self.anomaly_observed:
            return "anomaly"
        return f"prevented ({self.how})" if self.how else "prevented"


def check(scenario: Scenario, timeline: Timeline) -> Verdict:
    """Compare one run with the scenario's expectation at its level (see `Verdict`), or, when
    the run differs from it, with each accepted alternative in turn. A run no expectation
    applies to (see `no_expectation`) gets a verdict that judges nothing."""
    unjudged = no_expectation(scenario, timeline)
    if unjudged is not None:
        return Verdict(
            scenario=scenario.name, level=timeline.level, findings=(), anomaly=None, anomaly_observed=None,
            how=None, prevented_by=None, ended_early=timeline.ended_early, note=None,
            could_not_run=timeline.could_not_run, unjudged=unjudged,
        )
    expectation = scenario.expectations[timeline.level]
    if timeline.could_not_run is not None:
        return Verdict(
            scenario=scenario.name, level=timeline.level, findings=(), anomaly=None, anomaly_observed=None,
            how=None, prevented_by=None, ended_early=None, note=expectation.note, could_not_run=timeline.could_not_run,
        )
    # A run the step timeout stopped cannot tell whether the anomaly would have happened.
    observed_anomaly = None if timeline.ended_early else _anomaly_observed(scenario, timeline)
    how, prevented_by = how_prevented(scenario, timeline) if observed_anomaly is False else (None, None)
    chosen, findings = expectation, _findings(scenario, expectation, timeline, observed_anomaly)
    missed: list[tuple[str, tuple[Finding, ...]]] = []
    if not all(f.ok for f in findings):
        for alternative in expectation.alternatives:
            alt_findings = _findings(scenario, alternative, timeline, observed_anomaly)
            if all(f.ok for f in alt_findings):
                chosen, findings, missed = alternative, alt_findings, []
                break
            missed.append((alternative.name or "", tuple(f for f in alt_findings if not f.ok)))
    return Verdict(
        scenario=scenario.name,
        level=timeline.level,
        findings=tuple(findings),
        anomaly=scenario.anomaly.name if scenario.anomaly else None,
        anomaly_observed=observed_anomaly,
        how=how,
        prevented_by=prevented_by,
        ended_early=timeline.ended_early,
        note=chosen.note,
        sqlstate_changes=_sqlstate_changes(chosen.errors, _failures(timeline)),
        alternative=chosen.name,
        alternatives_missed=tuple(missed),
    )


def no_expectation(scenario: Scenario, timeline: Timeline) -> str | None:
    """Why none of the scenario's expectations applies to this run, or None when one does.

    A `.spec` states none (isolationtester's expected output is its check). A YAML or Python
    scenario's expectations, and its anomaly rule, are written for its own order of steps (its
    default permutation, the one `txnlab run` runs without --permutations): a run in another
    order is shown as it happened, judged by nothing."""
    if scenario.isolationtester:
        return "a .spec states no expectations (isolationtester's expected output is its check)"
    if scenario.interleaving:
        return "an interleaving states no expectations (the test's own assertions are its check)"
    if timeline.level not in scenario.expectations:
        return f"the scenario states no expectation at {timeline.level.value}"
    if timeline.permutation and tuple(timeline.permutation) != scenario.default_permutation:
        return "its expectations are for its own order: " + " ".join(scenario.default_permutation)
    return None


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
            FAILED_STEPS,
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
        findings.append(Finding(f"rows of {step}", *_rows_compared(rows, timeline, step)))
    for step, count in expectation.rowcount.items():
        findings.append(Finding(f"rowcount of {step}", str(count), _observed_rowcount(timeline, step)))
    for step, texts in expectation.notices.items():
        findings.append(_notices_finding(timeline, step, texts))
    for step, locks in expectation.holds.items():
        findings.append(Finding(f"locks held after {step}", _names(locks), _held(timeline, step)))
    for step, messages in expectation.sent.items():
        findings.append(Finding(f"sent for {step}", _messages(messages), _sent(timeline, step)))
    for step, state in expectation.states.items():
        findings.append(Finding(f"server state after {step}", state, _server_state(timeline, step)))
    for name, holds in expectation.invariants.items():
        observed = timeline.invariants.get(name)
        findings.append(Finding(f"invariant {name}", holds_phrase(holds), holds_phrase(observed)))
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


def _messages(messages: Any) -> str:
    """Wire messages in one line; a message may hold commas, so they are set apart with " | "."""
    messages = list(messages)
    return " | ".join(messages) if messages else "none"


def _sent(timeline: Timeline, step: str) -> str:
    """What the step's driver sent for it, from every event of the step (a wait's and its completion's)."""
    events = timeline.step_events(step)
    if not events:
        return "not run"
    return _messages(wire_text(m) for e in events for m in e.sent or ())


def _server_state(timeline: Timeline, step: str) -> str:
    """The server's state of the step's own session (pg_stat_activity) right after the step."""
    event = timeline.final_event(step)
    if event is None:
        return "not run"
    own = [view.state for view in event.server or () if view.label == "this session"]
    return own[0] or "no state" if own else "not observed"


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
    if event.rowcount is None:
        if event.outcome is Outcome.OK:
            return f"none: the server counted no rows for {event.status or 'this step'}"
        return f"none: the step ended {event.outcome.value}"
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


def _sqlstate_changes(expected: Mapping[str, str], failed: dict[str, str]) -> tuple[tuple[str, str, str], ...]:
    """(step, expected, observed) for each step that failed with another SQLSTATE than
    expected, when the steps that failed are exactly those expected to; else ()."""
    if set(expected) != set(failed):
        return ()
    return tuple((step, code, failed[step]) for step, code in sorted(expected.items()) if failed[step] != code)


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
    return f"invariant {condition.invariant} {holds_phrase(timeline.invariants.get(condition.invariant or ''))}"


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
    drivers: tuple[str, ...] = ()  # what the run's sessions spoke through, as it recorded them: ("psycopg2 2.9.13",)

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
        drivers=tuple(sorted({f'{name} {version}' for name, version in timeline.drivers.values()})),
    )


def how_prevented(scenario: Scenario, timeline: Timeline) -> tuple[str | None, ErrorInfo | None]:
    """What kept the anomaly out of a run in which it did not happen, and the refusal, if
    one did: ("aborted", the error), ("blocked", None), ("snapshot", None) or (None, None).

    Only the rule's conditions that did NOT hold stood in the anomaly's way, and only the
    steps that bear on such a condition can be credited with it:

    - an invariant condition: every step of the run, since the invariant is read from the
      final state, which any session's statements may have written;
    - a step condition on step S: S itself (its wait, its refusal); the earlier steps of
      S's transaction, whose refusal is why S failed (25P02) or was never sent, and, at
      READ COMMITTED and READ UNCOMMITTED, whose wait decided what S's new snapshot saw;
      and, in a SERIALIZABLE transaction, its later steps' refusals, a 40001 at its COMMIT
      included, since PostgreSQL vouches for data a serializable transaction read only
      once it has committed (documentation, "Serializable Isolation Level").

    A waiting step that failed in the end counts as refused. Per condition: "aborted" when
    a refusal (SQLSTATE class 40 or 23) bears on it, else "blocked" when a wait does, else
    "snapshot" for a `rows:` condition on a step that returned other rows: what a statement
    sees is what its snapshot shows (committed data only; at REPEATABLE READ and above, as
    of the transaction's first statement). Otherwise None: an invariant that held with
    nobody waiting or failing was kept by the statements themselves (one atomic UPDATE,
    SKIP LOCKED...), which txnlab cannot name, and a step that failed on its own, was
    skipped or never ran prevented nothing. Across conditions the strongest wins:
    aborted, then blocked, then snapshot.
    """
    rule = scenario.anomaly
    if rule is None:
        return None, None
    transactions = _transactions(timeline)
    causes: list[str] = []
    refusals: list[Event] = []
    for condition in rule.observed_if:
        if _condition_holds(condition, timeline):
            continue
        waits, refused, read = _bearing(scenario, timeline, condition, transactions)
        refusals += refused
        if refused:
            causes.append("aborted")
        elif waits:
            causes.append("blocked")
        elif read:
            causes.append("snapshot")
    how = next((cause for cause in ("aborted", "blocked", "snapshot") if cause in causes), None)
    first = min(refusals, key=lambda e: e.seq) if how == "aborted" else None
    return how, first.error if first else None


def _bearing(
    scenario: Scenario, timeline: Timeline, condition: Condition, transactions: dict[str, list[str]]
) -> tuple[list[Event], list[Event], bool]:
    """The waits and refusals that bear on a condition (see `how_prevented`), and whether it
    is about the rows a step returned, which it did."""
    if condition.step is None:
        steps = list(dict.fromkeys(e.step for e in timeline.events if e.step))
        return _waits(timeline, steps), _refused(timeline, steps), False
    step = condition.step
    transaction = transactions.get(step) or [step]  # a step that never completed is a transaction of its own
    at = transaction.index(step)
    level = _session_level(scenario, timeline, step)
    waited = transaction[: at + 1] if level in STATEMENT_SNAPSHOT_LEVELS else [step]
    refused = transaction if level is Level.SERIALIZABLE else transaction[: at + 1]
    final = timeline.final_event(step)
    read = condition.rows is not None and final is not None and final.outcome is Outcome.OK
    return _waits(timeline, waited), _refused(timeline, refused), read


def _session_level(scenario: Scenario, timeline: Timeline, step: str) -> Level:
    """The level the transactions of `step`'s session run at: pinned by the scenario, else the run's."""
    owner = scenario.steps[step].session if step in scenario.steps else None
    session = next((s for s in scenario.sessions if s.name == owner), None)
    return session.level if session is not None and session.level is not None else timeline.level


def _transactions(timeline: Timeline) -> dict[str, list[str]]:
    """Each step mapped to the steps of its transaction, in the order they were sent.

    A session's transaction ends with the step after which psycopg2 saw the connection idle
    (a COMMIT or ROLLBACK, a statement in autocommit), or closed; a step with no status
    (skipped, or cut off by the step timeout) leaves the transaction as it was."""
    open_: dict[str, list[str]] = {}
    result: dict[str, list[str]] = {}
    for event in timeline.events:
        if event.outcome is Outcome.ENDED:  # the server ended the session, and its transaction with it
            open_.pop(event.session, None)
        if not event.step or event.outcome is Outcome.BLOCKED or event.step in result:
            continue
        current = open_.setdefault(event.session, [])
        current.append(event.step)
        result[event.step] = current
        if event.transaction_status in ("idle", "closed"):
            del open_[event.session]
    return result


def _waits(timeline: Timeline, steps: list[str]) -> list[Event]:
    return [e for e in timeline.events if e.outcome is Outcome.BLOCKED and e.step in steps]


def _refused(timeline: Timeline, steps: list[str]) -> list[Event]:
    """The events in which the server refused one of these steps' transactions: SQLSTATE
    class 40 (40001 serialization failure, 40P01 deadlock) or 23 (a constraint)."""
    return [
        e for e in timeline.events
        if e.step in steps and e.outcome is Outcome.ERROR and e.error is not None
        and (e.error.sqlstate or "").startswith(PREVENTING_CLASSES)
    ]


def _names(items: Any) -> str:
    items = list(items)
    return ", ".join(items) if items else "none"


def holds_phrase(value: bool | None) -> str:
    """An invariant's result in words: "holds", "broken", or "not evaluated" (None)."""
    return "not evaluated" if value is None else ("holds" if value else "broken")


def _happened(value: bool) -> str:
    return "happens" if value else "prevented"
