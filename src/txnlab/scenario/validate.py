"""Turn a raw scenario document (from YAML or a Python module) into a validated `Scenario`.

Two stages. The schema (schema.py, enforced by pydantic) checks the shape and type of
every value; then the rules that relate parts of the document are checked here and in
expectations.py: a step's session exists, permutations and expectations name known
steps, `${step.column}` reads an earlier step, every level has an expectation.
Every problem is one ScenarioError naming the file, the line when the source has
lines, and what is wrong, so a typo in a workshop never shows a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from txnlab.errors import did_you_mean
from txnlab.levels import ALL_LEVELS, Level
from txnlab.runner.drivers import DEFAULT_DRIVER, DRIVERS
from txnlab.signals import deferred_signals
from txnlab.scenario.expectations import anomaly_rule, claim, expectations
from txnlab.scenario.model import Scenario, SessionSpec, Step
from txnlab.scenario.quote import quote
from txnlab.scenario.schema import NAME, ScenarioDocument, SessionDocument
from txnlab.scenario.schema_errors import scenario_error
from txnlab.scenario.source_lines import Where, source_lines
from txnlab.scenario.workload import build_workload

__all__ = ["NAME", "build_scenario"]


def build_scenario(
    document: Mapping[str, Any], source: Path, play: Callable[..., None] | None = None,
    module: Mapping[str, Any] | None = None,
) -> Scenario:
    """Validate a raw document; `play` is the Python function of a Python scenario and
    `module` its module's namespace (where a `workload: function:` is looked up).

    Raises ScenarioError (exit 2) for the first problem found."""
    raw = document if isinstance(document, dict) else dict(document)
    try:
        with deferred_signals():  # a signal's exception raised inside pydantic's core can surface as a bogus error
            doc = ScenarioDocument.model_validate(raw)
    except ValidationError as exc:
        raise scenario_error(exc, raw, source) from None
    where = Where(source, raw)
    drivers = _declared_drivers(where, doc, python=play is not None)
    sessions = _sessions(where, doc, drivers[0] if drivers else DEFAULT_DRIVER)
    steps, permutations = _steps(where, doc, sessions, python=play is not None)
    invariants = dict(doc.invariants or {})
    levels = _levels(where, doc)
    anomaly = anomaly_rule(where, doc, steps, invariants)
    lines = source_lines(raw, list(steps), play)
    return Scenario(
        name=doc.name,
        title=doc.title,
        summary=doc.summary,
        source=source,
        sessions=sessions,
        steps=steps,
        permutations=permutations,
        setup=tuple(doc.setup or ()),
        teardown=tuple(doc.teardown or ()),
        invariants=invariants,
        final=tuple(doc.final or ()),
        expectations=expectations(where, doc, levels, steps, invariants, anomaly),
        anomaly=anomaly,
        tags=tuple(doc.tags or ()),
        levels=levels,
        references=tuple(doc.references or ()),
        play=play,
        lines=lines,
        capture=bool(doc.capture),
        claim=claim(where, doc, steps, invariants, anomaly, levels),
        drivers=drivers,
        workload=build_workload(where, doc.workload, invariants, module, lines.get("workload.script")),
    )


def _declared_drivers(where: Where, doc: ScenarioDocument, *, python: bool) -> tuple[str, ...]:
    """A multi-driver Python scenario's `drivers:`, without repeats; one line when a SQL
    scenario declares them (it is driver-neutral unless a session pins `driver:`) or one
    is unknown."""
    if doc.drivers is None:
        return ()
    line = where.line("drivers")
    if not python:
        raise where.fail("'drivers:' is for Python scenarios; a SQL scenario runs on any driver unless a "
                         "session pins 'driver:'", line)
    if not doc.drivers:
        raise where.fail("'drivers:' lists no driver", line)
    for name in doc.drivers:
        if name not in DRIVERS:
            raise where.fail(f"'drivers:' names unknown driver {quote(name)}; {did_you_mean(name, DRIVERS)}drivers are: {', '.join(DRIVERS)}", line)
    return tuple(dict.fromkeys(doc.drivers))


def _sessions(where: Where, doc: ScenarioDocument, default_driver: str) -> tuple[SessionSpec, ...]:
    """The sessions; those that pin no `driver:` speak `default_driver`."""
    if len(doc.sessions) < 2:
        raise where.fail("a scenario needs at least two sessions under 'sessions:'", where.line("sessions") or 1)
    sessions = []
    for name, options in doc.sessions.items():
        options = options or SessionDocument()
        sessions.append(
            SessionSpec(
                name=name,
                setup=tuple(options.setup or ()),
                teardown=tuple(options.teardown or ()),
                autocommit=bool(options.autocommit),
                level=where.level(options.level, "sessions", name, "level") if options.level else None,
                read_only=options.read_only,
                deferrable=options.deferrable,
                driver=_driver(where, name, options.driver, default_driver),
                driver_pinned=options.driver is not None,
            )
        )
    return tuple(sessions)


def _driver(where: Where, session: str, name: str | None, default: str) -> str:
    """The driver a session names (`driver:`), `default` if none; one line naming the
    drivers when it names none of them."""
    if name is None:
        return default
    if name not in DRIVERS:
        problem = f"session {quote(session)} names unknown driver {quote(name)}; {did_you_mean(name, DRIVERS)}drivers are: {', '.join(DRIVERS)}"
        raise where.fail(problem, where.line("sessions", session, "driver"))
    return name


def _steps(
    where: Where, doc: ScenarioDocument, sessions: tuple[SessionSpec, ...], *, python: bool
) -> tuple[dict[str, Step], tuple[tuple[str, ...], ...]]:
    """The steps by name (unnamed ones become `<session>-<n>`) and the permutations."""
    if not doc.steps and not python:
        raise where.fail("a scenario needs a list of steps under 'steps:'", where.line("steps") or 1)
    session_names = {s.name for s in sessions}
    steps: dict[str, Step] = {}
    per_session: dict[str, int] = {}
    for index, item in enumerate(doc.steps or ()):
        line = where.line("steps", index)
        if item.session not in session_names:
            known = ", ".join(sorted(session_names))
            raise where.fail(f"step uses unknown session {quote(item.session)}; sessions are: {known}", line)
        per_session[item.session] = per_session.get(item.session, 0) + 1
        name = item.name or f"{item.session}-{per_session[item.session]}"
        if name in steps:
            raise where.fail(f"step name {quote(name)} is used twice", line)
        narration = (item.narration or "").strip() or None
        steps[name] = Step(name=name, session=item.session, sql=item.sql, narration=narration)

    permutations = []
    for i, names in enumerate(doc.permutations or ()):
        for step_name in names:
            if step_name not in steps:
                raise where.fail(f"permutation names unknown step {quote(step_name)}", where.line("permutations", i))
        permutations.append(tuple(names))
    if not permutations:
        permutations.append(tuple(steps))
    for permutation in permutations:
        _check_references(where, steps, permutation)
    return steps, tuple(permutations)


def _check_references(where: Where, steps: Mapping[str, Step], permutation: tuple[str, ...]) -> None:
    """Each `${step.column}` reads a step that runs earlier in `permutation`."""
    seen: set[str] = set()
    for step_name in permutation:
        for ref_step, _column in steps[step_name].references:
            if ref_step not in seen:
                raise where.fail(
                    f"step {quote(step_name)} uses ${{{ref_step}...}} but {quote(ref_step)} is not an earlier step",
                    where.line("steps"),
                )
        seen.add(step_name)


def _levels(where: Where, doc: ScenarioDocument) -> tuple[Level, ...]:
    if not doc.levels:
        return ALL_LEVELS
    chosen = {where.level(item, "levels", i) for i, item in enumerate(doc.levels)}
    return tuple(level for level in ALL_LEVELS if level in chosen)

