"""Ties the pipeline's stages together for the CLI, the tests and the benchmarks:
scenario -> runner -> timeline -> checks -> report.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from txnlab.checks import check
from txnlab.levels import Level
from txnlab.render.report import RunReport
from txnlab.runner.lab import Lab
from txnlab.scenario.model import Scenario

Cell = tuple[Scenario, Level]


def cells(scenarios: Iterable[Scenario], levels: Iterable[Level]) -> list[Cell]:
    """Every (scenario, level) pair the scenario supports, in catalogue then level order."""
    wanted = list(levels)
    return [(s, level) for s in scenarios for level in wanted if level in s.levels]


def run_cell(lab: Lab, scenario: Scenario, level: Level) -> RunReport:
    timeline = lab.run(scenario, level)
    return RunReport(scenario, timeline, check(scenario, timeline))


def run_cells(lab: Lab, planned: Iterable[Cell]) -> Iterator[RunReport]:
    for scenario, level in planned:
        yield run_cell(lab, scenario, level)
