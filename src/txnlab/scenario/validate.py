"""Turn a raw scenario document (from YAML or a Python module) into a validated `Scenario`.

Every problem is reported as one ScenarioError naming the file, the line when the
source has lines, and what is wrong, so a typo in a workshop never shows a traceback.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from txnlab.errors import ScenarioError, UsageError
from txnlab.levels import ALL_LEVELS, Level
from txnlab.scenario.model import (
    AnomalyRule,
    Claim,
    Condition,
    Expectation,
    Rows,
    Scenario,
    SessionSpec,
    Step,
)

NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][\w-]*$")
SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")
# A failure without a SQLSTATE (a driver or Python exception) is named by its class.
EXCEPTION_CLASS = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")

TOP_KEYS = {
    "name", "title", "summary", "tags", "references", "setup", "teardown", "sessions",
    "steps", "permutations", "invariants", "anomaly", "levels", "expect", "capture", "claim",
}
SESSION_KEYS = {"setup", "teardown", "autocommit", "level", "read_only", "deferrable"}
STEP_KEYS = {"session", "name", "sql", "narration"}
EXPECT_KEYS = {"blocked", "errors", "skipped", "rows", "invariants", "anomaly", "note"}
CONDITION_KEYS = {"step", "rows", "blocked", "error", "invariant", "holds", "anomaly"}
CLAIM_KEYS = {"says", "source", "level", "true_if", "holds"}


class _Checker:
    """Validation helpers bound to one source file, so each error can say where it is."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def fail(self, problem: str, line: int | None = None) -> ScenarioError:
        return ScenarioError(str(self.source), problem, line)

    @staticmethod
    def line_of(container: Any, key: Any = None) -> int | None:
        if key is not None:
            if isinstance(key, int):
                lines = getattr(container, "item_lines", None)
                return lines[key] if lines and key < len(lines) else getattr(container, "line", None)
            return getattr(container, "key_lines", {}).get(key, getattr(container, "line", None))
        return getattr(container, "line", None)

    def mapping(self, value: Any, what: str, line: int | None) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(f"{what} must be a mapping, not {_kind(value)}", line)
        return value

    def sequence(self, value: Any, what: str, line: int | None) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{what} must be a list, not {_kind(value)}", line)
        return value

    def text(self, value: Any, what: str, line: int | None, *, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{what} must be non-empty text", line)
        return value.strip()

    def flag(self, value: Any, what: str, line: int | None) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        raise self.fail(f"{what} must be true or false, not {value!r}", line)

    def sql_list(self, value: Any, what: str, line: int | None) -> tuple[str, ...]:
        """SQL given as one text or as a list of texts (each run as one command string)."""
        if value is None:
            return ()
        if isinstance(value, str):
            return (self.text(value, what, line),)
        items = self.sequence(value, what, line)
        return tuple(self.text(item, what, self.line_of(items, i)) for i, item in enumerate(items))

    def known_keys(self, mapping: Mapping[str, Any], allowed: set[str], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                options = ", ".join(sorted(allowed))
                raise self.fail(
                    f"unknown key {key!r} in {what}{suggestion}; allowed: {options}",
                    self.line_of(mapping, key),
                )

    def level(self, value: Any, line: int | None) -> Level:
        try:
            return Level.parse(str(value))
        except UsageError as exc:
            raise self.fail(str(exc), line) from None


def _kind(value: Any) -> str:
    """Name a YAML value's type the way a scenario author thinks of it."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def build_scenario(
    document: Mapping[str, Any], source: Path, play: Callable[..., None] | None = None
) -> Scenario:
    """Validate a raw document; `play` is the Python function of a Python scenario."""
    check = _Checker(source)
    check.known_keys(document, TOP_KEYS, "the scenario")

    name = check.text(document.get("name"), "name", check.line_of(document, "name"))
    if not NAME.match(name):
        raise check.fail(
            f"name {name!r} must be lowercase letters, digits and dashes", check.line_of(document, "name")
        )
    title = check.text(document.get("title"), "title", check.line_of(document, "title"))
    summary = check.text(document.get("summary"), "summary", check.line_of(document, "summary"))

    sessions = _sessions(check, document)
    steps, permutations = _steps(check, document, sessions, python=play is not None)
    invariants = _invariants(check, document)
    levels = _levels(check, document)
    anomaly = _anomaly(check, document, steps, invariants)
    expectations = _expectations(check, document, levels, steps, invariants, anomaly)

    return Scenario(
        name=name,
        title=title,
        summary=summary,
        source=source,
        sessions=sessions,
        steps=steps,
        permutations=permutations,
        setup=check.sql_list(document.get("setup"), "setup", check.line_of(document, "setup")),
        teardown=check.sql_list(document.get("teardown"), "teardown", check.line_of(document, "teardown")),
        invariants=invariants,
        expectations=expectations,
        anomaly=anomaly,
        tags=tuple(
            check.text(t, "a tag", check.line_of(document, "tags"))
            for t in check.sequence(document.get("tags"), "tags", check.line_of(document, "tags"))
        ),
        levels=levels,
        references=tuple(
            check.text(r, "a reference", check.line_of(document, "references"))
            for r in check.sequence(
                document.get("references"), "references", check.line_of(document, "references")
            )
        ),
        play=play,
        lines=_source_lines(document, play),
        capture=bool(check.flag(document.get("capture"), "capture", check.line_of(document, "capture"))),
        claim=_claim(check, document, steps, invariants, anomaly, levels),
    )


def _text_lines(container: Any, key: Any, prefix: str) -> dict[str, int]:
    """Lines where the SQL under `container[key]` starts: one text ("prefix.0") or a list
    ("prefix.N"); nothing for documents without lines (Python)."""
    value = container.get(key) if isinstance(container, Mapping) else None
    starts = getattr(container, "text_lines", {})
    if isinstance(value, str) and key in starts:
        return {f"{prefix}.0": starts[key]}
    if isinstance(value, list) and getattr(value, "text_lines", None):
        return {f"{prefix}.{i}": line for i, line in enumerate(value.text_lines)}
    return {}


def _source_lines(document: Mapping[str, Any], play: Callable[..., None] | None) -> dict[str, int]:
    """Where each piece of SQL starts in the file (see `Scenario.lines`); called once the
    document has been validated, so its shapes are known to be right."""
    lines = {**_text_lines(document, "setup", "setup"), **_text_lines(document, "teardown", "teardown")}
    sessions = document.get("sessions") or {}
    for name, options in sessions.items():
        if isinstance(options, Mapping):
            lines.update(_text_lines(options, "setup", f"session.{name}.setup"))
            lines.update(_text_lines(options, "teardown", f"session.{name}.teardown"))
    steps = document.get("steps") or []
    per_session: dict[str, int] = {}
    for item in steps:
        per_session[item["session"]] = per_session.get(item["session"], 0) + 1
        name = item.get("name") or f"{item['session']}-{per_session[item['session']]}"
        lines.update({f"step.{name}": line for line in _text_lines(item, "sql", "sql").values()})
    invariants = document.get("invariants") or {}
    for name in invariants:
        lines.update({f"invariant.{name}": line for line in _text_lines(invariants, name, "sql").values()})
    if play is not None and hasattr(play, "__code__"):
        lines["play"] = play.__code__.co_firstlineno
    return lines


def _sessions(check: _Checker, document: Mapping[str, Any]) -> tuple[SessionSpec, ...]:
    line = check.line_of(document, "sessions")
    raw = check.mapping(document.get("sessions"), "sessions", line)
    if len(raw) < 2:
        raise check.fail("a scenario needs at least two sessions under 'sessions:'", line or 1)
    sessions = []
    for session_name, options in raw.items():
        where = check.line_of(raw, session_name)
        if not IDENTIFIER.match(session_name):
            raise check.fail(f"session name {session_name!r} must be an identifier", where)
        options = check.mapping(options, f"session {session_name!r}", where)
        check.known_keys(options, SESSION_KEYS, f"session {session_name!r}")
        level = options.get("level")
        sessions.append(
            SessionSpec(
                name=session_name,
                setup=check.sql_list(options.get("setup"), "session setup", where),
                teardown=check.sql_list(options.get("teardown"), "session teardown", where),
                autocommit=bool(check.flag(options.get("autocommit"), "autocommit", where)),
                level=check.level(level, where) if level is not None else None,
                read_only=check.flag(options.get("read_only"), "read_only", where),
                deferrable=check.flag(options.get("deferrable"), "deferrable", where),
            )
        )
    return tuple(sessions)


def _steps(
    check: _Checker, document: Mapping[str, Any], sessions: tuple[SessionSpec, ...], *, python: bool
) -> tuple[dict[str, Step], tuple[tuple[str, ...], ...]]:
    line = check.line_of(document, "steps")
    raw = check.sequence(document.get("steps"), "steps", line)
    if not raw and not python:
        raise check.fail("a scenario needs a list of steps under 'steps:'", line or 1)
    session_names = {s.name for s in sessions}
    steps: dict[str, Step] = {}
    per_session: dict[str, int] = {}
    for index, item in enumerate(raw):
        where = check.line_of(raw, index)
        item = check.mapping(item, "a step", where)
        check.known_keys(item, STEP_KEYS, "a step")
        session = check.text(item.get("session"), "a step's session", where)
        if session not in session_names:
            known = ", ".join(sorted(session_names))
            raise check.fail(f"step uses unknown session {session!r}; sessions are: {known}", where)
        per_session[session] = per_session.get(session, 0) + 1
        name = item.get("name") or f"{session}-{per_session[session]}"
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise check.fail(f"step name {name!r} must be an identifier", where)
        if name in steps:
            raise check.fail(f"step name {name!r} is used twice", where)
        steps[name] = Step(
            name=name,
            session=session,
            sql=check.text(item.get("sql"), f"step {name!r}: sql", where),
            narration=check.text(item.get("narration"), "narration", where, required=False) or None,
        )

    perm_line = check.line_of(document, "permutations")
    raw_perms = check.sequence(document.get("permutations"), "permutations", perm_line)
    permutations = []
    for i, perm in enumerate(raw_perms):
        where = check.line_of(raw_perms, i)
        names = check.sequence(perm, "a permutation", where)
        for step_name in names:
            if step_name not in steps:
                raise check.fail(f"permutation names unknown step {step_name!r}", where)
        permutations.append(tuple(names))
    if not permutations:
        permutations.append(tuple(steps))
    for permutation in permutations:
        _check_references(check, steps, permutation, line)
    return steps, tuple(permutations)


def _check_references(
    check: _Checker, steps: Mapping[str, Step], permutation: tuple[str, ...], line: int | None
) -> None:
    seen: set[str] = set()
    for step_name in permutation:
        for ref_step, _column in steps[step_name].references:
            if ref_step not in seen:
                raise check.fail(
                    f"step {step_name!r} uses ${{{ref_step}...}} but {ref_step!r} "
                    "is not an earlier step",
                    line,
                )
        seen.add(step_name)


def _invariants(check: _Checker, document: Mapping[str, Any]) -> dict[str, str]:
    line = check.line_of(document, "invariants")
    raw = check.mapping(document.get("invariants"), "invariants", line)
    result = {}
    for name, sql in raw.items():
        where = check.line_of(raw, name)
        if not IDENTIFIER.match(name):
            raise check.fail(f"invariant name {name!r} must be an identifier", where)
        result[name] = check.text(sql, f"invariant {name!r}", where)
    return result


def _levels(check: _Checker, document: Mapping[str, Any]) -> tuple[Level, ...]:
    line = check.line_of(document, "levels")
    raw = check.sequence(document.get("levels"), "levels", line)
    if not raw:
        return ALL_LEVELS
    chosen = {check.level(item, line) for item in raw}
    return tuple(level for level in ALL_LEVELS if level in chosen)


def _rows(check: _Checker, value: Any, what: str, line: int | None) -> Rows:
    rows = check.sequence(value, what, line)
    result = []
    for row in rows:
        if not isinstance(row, list):
            raise check.fail(f"{what} must be a list of rows, each a list like [1, 10]", line)
        result.append(tuple(row))
    return tuple(result)


def _condition(
    check: _Checker,
    raw: Any,
    line: int | None,
    steps: Mapping[str, Step],
    invariants: Mapping[str, str],
    anomaly: AnomalyRule | None = None,
) -> Condition:
    raw = check.mapping(raw, "a condition", line)
    check.known_keys(raw, CONDITION_KEYS, "a condition")
    if "step" in raw:
        if raw["step"] not in steps:
            raise check.fail(f"condition names unknown step {raw['step']!r}", line)
        facts = [key for key in ("rows", "blocked", "error") if key in raw]
        if len(facts) != 1:
            raise check.fail("a step condition needs exactly one of 'rows:', 'blocked:' or 'error:'", line)
        error = raw.get("error")
        if error is not None and str(error) != "none" and not SQLSTATE.match(str(error)) \
                and not EXCEPTION_CLASS.match(str(error)):
            raise check.fail(f"error: {error!r} is not a SQLSTATE, an exception class, or 'none'", line)
        return Condition(
            step=raw["step"],
            rows=_rows(check, raw["rows"], "rows", line) if "rows" in raw else None,
            blocked=check.flag(raw.get("blocked"), "blocked", line),
            error=str(error) if error is not None else None,
        )
    if "invariant" in raw:
        if raw["invariant"] not in invariants:
            raise check.fail(f"condition names unknown invariant {raw['invariant']!r}", line)
        holds = check.flag(raw.get("holds"), "holds", line)
        if holds is None:
            raise check.fail("an invariant condition needs 'holds: true' or 'holds: false'", line)
        return Condition(invariant=raw["invariant"], holds=holds)
    if "anomaly" in raw and anomaly is not None:
        return Condition(anomaly=check.flag(raw.get("anomaly"), "anomaly", line))
    raise check.fail(
        "a condition needs 'step:' (with rows, blocked or error), 'invariant:' with 'holds:', "
        "or, in a claim of a scenario with an anomaly rule, 'anomaly:'",
        line,
    )


def _claim(
    check: _Checker,
    document: Mapping[str, Any],
    steps: Mapping[str, Step],
    invariants: Mapping[str, str],
    anomaly: AnomalyRule | None,
    levels: tuple[Level, ...],
) -> Claim | None:
    line = check.line_of(document, "claim")
    raw = check.mapping(document.get("claim"), "claim", line)
    if not raw:
        return None
    check.known_keys(raw, CLAIM_KEYS, "claim")
    level = check.level(raw.get("level"), line)
    if level not in levels:
        raise check.fail(f"the claim is about {level.value}, which 'levels:' leaves out", line)
    conditions = check.sequence(raw.get("true_if"), "claim true_if", line)
    if not conditions:
        raise check.fail("a claim needs 'true_if:', the conditions under which it would be true", line)
    holds = check.flag(raw.get("holds"), "claim holds", line)
    if holds is None:
        raise check.fail("a claim needs 'holds: true' or 'holds: false' (what PostgreSQL really does)", line)
    source = raw.get("source")
    return Claim(
        says=check.text(raw.get("says"), "claim says", line),
        level=level,
        true_if=tuple(
            _condition(check, c, check.line_of(conditions, i), steps, invariants, anomaly)
            for i, c in enumerate(conditions)
        ),
        holds=holds,
        source=check.text(source, "claim source", line) if source is not None else None,
    )


def _anomaly(
    check: _Checker,
    document: Mapping[str, Any],
    steps: Mapping[str, Step],
    invariants: Mapping[str, str],
) -> AnomalyRule | None:
    line = check.line_of(document, "anomaly")
    raw = check.mapping(document.get("anomaly"), "anomaly", line)
    if not raw:
        return None
    check.known_keys(raw, {"name", "observed_if"}, "anomaly")
    conditions = check.sequence(raw.get("observed_if"), "anomaly observed_if", line)
    if not conditions:
        raise check.fail("anomaly needs 'observed_if:', a list of conditions", line)
    return AnomalyRule(
        name=check.text(raw.get("name"), "anomaly name", line),
        observed_if=tuple(
            _condition(check, c, check.line_of(conditions, i), steps, invariants)
            for i, c in enumerate(conditions)
        ),
    )


def _expectations(
    check: _Checker,
    document: Mapping[str, Any],
    levels: tuple[Level, ...],
    steps: Mapping[str, Step],
    invariants: Mapping[str, str],
    anomaly: AnomalyRule | None,
) -> dict[Level, Expectation]:
    line = check.line_of(document, "expect")
    raw = check.mapping(document.get("expect"), "expect", line)
    result: dict[Level, Expectation] = {}
    for key, body in raw.items():
        where = check.line_of(raw, key)
        targets = levels if key.strip().lower() == "all" else [
            check.level(part, where) for part in key.split(",")
        ]
        body = check.mapping(body, f"expect {key!r}", where)
        check.known_keys(body, EXPECT_KEYS, f"expect {key!r}")
        expectation = _expectation(check, body, where, steps, invariants, anomaly)
        for level in targets:
            if level in result:
                raise check.fail(f"two expectations given for {level.value}", where)
            if level not in levels:
                raise check.fail(f"expectation for {level.value}, which 'levels:' leaves out", where)
            result[level] = expectation
    missing = [level.value for level in levels if level not in result]
    if missing:
        raise check.fail(
            f"no expectation for {', '.join(missing)} (add them under 'expect:')", line or 1
        )
    return result


def _expectation(
    check: _Checker,
    body: Mapping[str, Any],
    where: int | None,
    steps: Mapping[str, Step],
    invariants: Mapping[str, str],
    anomaly: AnomalyRule | None,
) -> Expectation:
    def step_name(name: Any, line: int | None) -> str:
        if name not in steps:
            raise check.fail(f"expectation names unknown step {name!r}", line)
        return name

    def step_set(key: str) -> frozenset[str]:
        line = check.line_of(body, key) or where
        return frozenset(step_name(n, line) for n in check.sequence(body.get(key), key, line))

    blocked = step_set("blocked")
    skipped = step_set("skipped")
    errors_raw = check.mapping(body.get("errors"), "errors", check.line_of(body, "errors") or where)
    errors = {}
    for name, code in errors_raw.items():
        line = check.line_of(errors_raw, name)
        code = str(code)
        if not SQLSTATE.match(code) and not EXCEPTION_CLASS.match(code):
            raise check.fail(
                f"errors: {code!r} is not a SQLSTATE (five characters, e.g. 40001) "
                "or an exception class (e.g. psycopg2.ProgrammingError)",
                line,
            )
        errors[step_name(name, line)] = code
    rows_raw = check.mapping(body.get("rows"), "rows", check.line_of(body, "rows") or where)
    rows = {
        step_name(name, check.line_of(rows_raw, name)): _rows(
            check, value, f"rows of {name!r}", check.line_of(rows_raw, name)
        )
        for name, value in rows_raw.items()
    }
    inv_raw = check.mapping(body.get("invariants"), "invariants", check.line_of(body, "invariants") or where)
    expected_invariants = {}
    for name, holds in inv_raw.items():
        line = check.line_of(inv_raw, name)
        if name not in invariants:
            raise check.fail(f"expectation names unknown invariant {name!r}", line)
        flag = check.flag(holds, f"invariant {name!r}", line)
        if flag is None:
            raise check.fail(f"invariant {name!r}: say true (holds) or false (broken)", line)
        expected_invariants[name] = flag
    anomaly_expected = check.flag(body.get("anomaly"), "anomaly", check.line_of(body, "anomaly") or where)
    if anomaly_expected is not None and anomaly is None:
        raise check.fail("'anomaly:' expected, but the scenario defines no 'anomaly:' rule", where)
    note = body.get("note")
    return Expectation(
        blocked=blocked,
        errors=errors,
        skipped=skipped,
        rows=rows,
        invariants=expected_invariants,
        anomaly=anomaly_expected,
        note=check.text(note, "note", where) if note is not None else None,
    )
