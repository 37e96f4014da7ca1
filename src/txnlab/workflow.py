"""Ties the pipeline's stages together for the CLI, the tests and the benchmarks:
scenario -> runner -> timeline -> checks -> report.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from txnlab.checks import check
from txnlab.history import analyse
from txnlab.history.statements import session_level
from txnlab.levels import Level
from txnlab.render.report import RunReport
from txnlab.runner.execute import CannotRun
from txnlab.runner.lab import Lab
from txnlab.runner.scheduler import Watcher
from txnlab.scenario.model import Scenario
from txnlab.timeline import Timeline

Cell = tuple[Scenario, Level]
Permutation = tuple[str, ...]
# The permutations asked of each scenario (by its file), as `chosen_permutations` returns them.
Chosen = Mapping[Path, tuple[Permutation, ...]]


def cells(scenarios: Iterable[Scenario], levels: Iterable[Level]) -> list[Cell]:
    """Every (scenario, level) pair the scenario supports, in catalogue then level order."""
    wanted = list(levels)
    return [(s, level) for s in scenarios for level in wanted if level in s.levels]


def run_cell(
    lab: Lab, scenario: Scenario, level: Level, then: Scenario | None = None, watcher: Watcher | None = None
) -> RunReport:
    """Run and check one cell. A cell this server cannot run (CannotRun: a missing privilege,
    extension or resource) is reported as such, with the reason, instead of ending the whole
    invocation; the CLI then exits 3 after showing every cell."""
    try:
        timeline = lab.run(scenario, level, then=then, watcher=watcher)
    except CannotRun as exc:
        timeline = _could_not_run(lab, scenario, level, (), exc)
    return report(scenario, timeline)


def run_permutations(
    lab: Lab, scenario: Scenario, level: Level, permutations: Sequence[Permutation] | None,
    then: Scenario | None = None,
) -> Iterator[RunReport]:
    """Run and check one cell in each of `permutations` (None: a `.spec`'s own), in order, each
    report placed (number, count). Only a YAML scenario's own order is judged by its expectations
    (see checks.no_expectation). A `.spec` runs as isolationtester runs it (Lab.run_permutations),
    and stops after a failed setup; a YAML run this server cannot run is reported as such, and
    the next permutation still runs."""
    if scenario.isolationtester:
        count = len(permutations if permutations is not None else scenario.permutations)
        try:
            timelines = lab.run_permutations(scenario, level, permutations)
        except CannotRun as exc:
            timelines = [_could_not_run(lab, scenario, level, (), exc)]
        for index, timeline in enumerate(timelines):
            yield report(scenario, timeline, (index + 1, count))
        return
    for index, permutation in enumerate(permutations or ()):
        following = scenario if index + 1 < len(permutations) else then
        try:
            timeline = lab.run(scenario, level, permutation, then=following)
        except CannotRun as exc:
            timeline = _could_not_run(lab, scenario, level, permutation, exc)
        yield report(scenario, timeline, (index + 1, len(permutations)))


def report(scenario: Scenario, timeline: Timeline, place: tuple[int, int] | None = None) -> RunReport:
    """A run checked against the scenario's expectations, with its history analysed (None
    when the run recorded none)."""
    pinned = {s.name: level for s in scenario.sessions
              if (level := session_level(tuple(s.setup), s.autocommit, s.level)) is not None}
    setups = {s.name: tuple(s.setup) for s in scenario.sessions}
    return RunReport(scenario, timeline, check(scenario, timeline), place, analysis=analyse(timeline, pinned, setups))


def _could_not_run(lab: Lab, scenario: Scenario, level: Level, permutation: Permutation, exc: CannotRun) -> Timeline:
    return Timeline(
        scenario=scenario.name, level=level, sessions=tuple(s.name for s in scenario.sessions),
        permutation=permutation, server_version=lab.server_version, could_not_run=str(exc),
    )


def run_cells(lab: Lab, planned: Sequence[Cell], chosen: Chosen | None = None) -> Iterator[RunReport]:
    """Run cells in order; each next cell's schema is built while the current one runs. A
    scenario `chosen` names runs in each of its permutations there (see `run_permutations`)."""
    for index, (scenario, level) in enumerate(planned):
        following = planned[index + 1][0] if index + 1 < len(planned) else None
        permutations = (chosen or {}).get(scenario.source)
        if permutations is None and not scenario.isolationtester:
            yield run_cell(lab, scenario, level, then=following)
        else:
            yield from run_permutations(lab, scenario, level, permutations, then=following)
