"""The rules of a scenario's verdicts, checked once the schema has passed: the anomaly
rule, the claim and the expectations per level name steps, invariants and levels that
the scenario has (see validate.py for the first stage)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from txnlab.levels import Level
from txnlab.scenario.model import AnomalyRule, Claim, Condition, Expectation, Rows, Step
from txnlab.scenario.quote import quote
from txnlab.sql_spacing import collapse_layout
from txnlab.scenario.schema import ConditionDocument, ExpectationDocument, ExpectationFields, ScenarioDocument
from txnlab.scenario.source_lines import Where

DocumentPath = tuple[int | str, ...]  # keys and indexes from the document root


def _rows(rows: Iterable[Iterable[object]]) -> Rows:
    return tuple(tuple(row) for row in rows)


def _condition(
    where: Where,
    raw: ConditionDocument,
    path: DocumentPath,
    steps: Mapping[str, Step],
    invariants: Mapping[str, str],
    anomaly: AnomalyRule | None = None,
) -> Condition:
    """One condition of an anomaly rule or a claim (`anomaly` only for a claim)."""
    line = where.line(*path)
    given = raw.model_fields_set
    if "step" in given and raw.step is not None:
        if raw.step not in steps:
            raise where.fail(f"condition names unknown step {quote(raw.step)}", line)
        if len(given & {"rows", "blocked", "error"}) != 1:
            raise where.fail("a step condition needs exactly one of 'rows:', 'blocked:' or 'error:'", line)
        rows = _rows(raw.rows) if raw.rows is not None else None
        return Condition(step=raw.step, rows=rows, blocked=raw.blocked, error=raw.error)
    if "invariant" in given and raw.invariant is not None:
        if raw.invariant not in invariants:
            raise where.fail(f"condition names unknown invariant {quote(raw.invariant)}", line)
        if raw.holds is None:
            raise where.fail("an invariant condition needs 'holds: true' or 'holds: false'", line)
        return Condition(invariant=raw.invariant, holds=raw.holds)
    if "anomaly" in given and anomaly is not None:
        return Condition(anomaly=raw.anomaly)
    raise where.fail(
        "a condition needs 'step:' (with rows, blocked or error), 'invariant:' with 'holds:', "
        "or, in a claim of a scenario with an anomaly rule, 'anomaly:'",
        line,
    )


def anomaly_rule(
    where: Where, doc: ScenarioDocument, steps: Mapping[str, Step], invariants: Mapping[str, str]
) -> AnomalyRule | None:
    """The scenario's `anomaly:` rule, its conditions checked against steps and invariants."""
    if doc.anomaly is None:
        return None
    if not doc.anomaly.observed_if:
        raise where.fail("anomaly needs 'observed_if:', a list of conditions", where.line("anomaly"))
    return AnomalyRule(
        name=doc.anomaly.name,
        observed_if=tuple(
            _condition(where, c, ("anomaly", "observed_if", i), steps, invariants)
            for i, c in enumerate(doc.anomaly.observed_if)
        ),
    )


def claim(
    where: Where,
    doc: ScenarioDocument,
    steps: Mapping[str, Step],
    invariants: Mapping[str, str],
    anomaly: AnomalyRule | None,
    levels: tuple[Level, ...],
) -> Claim | None:
    """The scenario's `claim:`, about one of the levels it runs at."""
    raw = doc.claim
    if raw is None:
        return None
    level = where.level(raw.level, "claim", "level")
    if level not in levels:
        raise where.fail(f"the claim is about {level.value}, which 'levels:' leaves out", where.line("claim"))
    if not raw.true_if:
        raise where.fail(
            "a claim needs 'true_if:', the conditions under which it would be true", where.line("claim", "true_if")
        )
    return Claim(
        says=raw.says,
        level=level,
        true_if=tuple(
            _condition(where, c, ("claim", "true_if", i), steps, invariants, anomaly)
            for i, c in enumerate(raw.true_if)
        ),
        holds=raw.holds,
        source=raw.source,
    )


@dataclass(frozen=True)
class Known:
    """What an expectation may name: the scenario's steps, invariants, anomaly rule and sessions."""

    steps: Mapping[str, Step]
    invariants: Mapping[str, str]
    anomaly: AnomalyRule | None
    sessions: frozenset[str]
    capture: bool  # what the driver sent and the server's view are recorded: `sent:` and `state:` need it


def expectations(
    where: Where,
    doc: ScenarioDocument,
    levels: tuple[Level, ...],
    steps: Mapping[str, Step],
    invariants: Mapping[str, str],
    anomaly: AnomalyRule | None,
) -> dict[Level, Expectation]:
    """One expectation for each level the scenario runs at (`expect:` keys may name
    several levels, comma-separated, or `all`)."""
    known = Known(steps, invariants, anomaly, frozenset(doc.sessions), bool(doc.capture))
    result: dict[Level, Expectation] = {}
    for key, body in (doc.expect or {}).items():
        line = where.line("expect", key)
        if key.strip().lower() == "all":
            targets = list(levels)
        else:
            targets = [where.level(part, "expect", key) for part in key.split(",")]
        expectation = _expectation(where, body or ExpectationDocument(), ("expect", key), known)
        for level in targets:
            if level in result:
                raise where.fail(f"two expectations given for {level.value}", line)
            if level not in levels:
                raise where.fail(f"expectation for {level.value}, which 'levels:' leaves out", line)
            result[level] = expectation
    missing = [level.value for level in levels if level not in result]
    if missing:
        raise where.fail(
            f"no expectation for {', '.join(missing)} (add them under 'expect:')", where.line("expect") or 1
        )
    return result


def _expectation(where: Where, body: ExpectationDocument, path: DocumentPath, known: Known) -> Expectation:
    """One `expect:` entry and its accepted alternatives (each inherits the keys it does not give)."""
    main = Expectation(**_given(where, body, path, known))
    _check_blocked_by(where, main, path)
    alternatives = []
    for index, raw in enumerate(body.alternatives or ()):
        alt_path = (*path, "alternatives", index)
        if raw.name in {a.name for a in alternatives}:
            raise where.fail(f"two alternatives are named {quote(raw.name)}", where.line(*alt_path, "name"))
        alternative = dataclasses.replace(main, **_given(where, raw, alt_path, known), name=raw.name)
        _check_blocked_by(where, alternative, alt_path)
        alternatives.append(alternative)
    return dataclasses.replace(main, alternatives=tuple(alternatives))


def _given(where: Where, body: ExpectationFields, path: DocumentPath, known: Known) -> dict[str, Any]:
    """The Expectation fields that `body` gives (and only those, so an alternative inherits
    the rest), after checking what they name (see `_check_names`)."""
    _check_names(where, body, path, known)
    errors = body.errors or {}
    fields: dict[str, Any] = {
        "blocked": frozenset(body.blocked or ()),
        "blocked_by": {step: frozenset(names) for step, names in (body.blocked_by or {}).items()},
        "errors": {step: error if isinstance(error, str) else error.sqlstate for step, error in errors.items()},
        "error_details": {
            step: error.detail for step, error in errors.items() if not isinstance(error, str) and error.detail
        },
        "skipped": frozenset(body.skipped or ()),
        "rows": {name: _rows(rows) for name, rows in (body.rows or {}).items()},
        "holds": {name: tuple(sorted(locks)) for name, locks in (body.holds or {}).items()},
        "rowcount": dict(body.rowcount or {}),
        "notices": {step: tuple(texts) for step, texts in (body.notices or {}).items()},
        "sent": {step: tuple(collapse_layout(m) for m in messages) for step, messages in (body.sent or {}).items()},
        "states": dict(body.state or {}),
        "invariants": dict(body.invariants or {}),
        "anomaly": body.anomaly,
        "note": body.note,
    }
    given = body.model_fields_set | ({"error_details"} if "errors" in body.model_fields_set else set())
    given |= {"states"} if "state" in given else set()
    return {key: value for key, value in fields.items() if key in given}


def _check_names(where: Where, body: ExpectationFields, path: DocumentPath, known: Known) -> None:
    """Every step, session and invariant `body` names exists, and `anomaly:` has a rule to check."""
    for key in ("sent", "state"):
        if getattr(body, key) and not known.capture:
            raise where.fail(f"'{key}:' needs 'capture: true': without it nothing is recorded", where.line(*path, key))
    for key in ("blocked", "skipped", "errors", "rows", "holds", "blocked_by", "rowcount", "notices", "sent", "state"):
        names = getattr(body, key) or []
        for i, name in enumerate(names):
            if name not in known.steps:
                line = where.line(*path, key, i if isinstance(names, list) else name)
                raise where.fail(f"expectation names unknown step {quote(name)}", line)
    for step, blockers in (body.blocked_by or {}).items():
        line = where.line(*path, "blocked_by", step)
        if not blockers:
            raise where.fail(f"blocked_by: {quote(step)} needs the sessions it waits for", line)
        for name in blockers:
            if name not in known.sessions:
                raise where.fail(f"blocked_by: {quote(step)} waits for unknown session {quote(name)}; "
                                 f"sessions are: {', '.join(sorted(known.sessions))}", line)
            if name == known.steps[step].session:
                raise where.fail(f"blocked_by: {quote(step)} cannot wait for its own session {quote(name)}", line)
    for name in body.invariants or {}:
        if name not in known.invariants:
            raise where.fail(
                f"expectation names unknown invariant {quote(name)}", where.line(*path, "invariants", name)
            )
    if body.anomaly is not None and known.anomaly is None:
        raise where.fail("'anomaly:' expected, but the scenario defines no 'anomaly:' rule", where.line(*path))


def _check_blocked_by(where: Where, expectation: Expectation, path: DocumentPath) -> None:
    """A step can only have waited for someone if it is expected to wait at all."""
    for step in expectation.blocked_by:
        if step not in expectation.blocked:
            raise where.fail(f"blocked_by: {quote(step)} is not in 'blocked:', the steps that wait",
                             where.line(*path, "blocked_by", step) or where.line(*path))
