"""Living documentation: every scenario in the catalogue, at every level it supports, run
on a real server; each test asserts what PostgreSQL does (the scenario's expectations).
"""

from __future__ import annotations

import pytest

from txnlab.checks import check, check_claim
from txnlab.errors import ServerError
from txnlab.levels import Level
from txnlab.render.describe import mismatch_lines
from txnlab.render.report import RunReport
from txnlab.render.text import render_timeline
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue

CELLS = [
    pytest.param(name, level, id=f"{name}[{level.value}]")
    for name, scenario in Catalogue().scenarios.items()
    for level in scenario.levels
]


@pytest.mark.parametrize(("name", "level"), CELLS)
def test_postgresql_behaves_as_the_scenario_says(lab: Lab, catalogue: Catalogue, name: str, level: Level) -> None:
    scenario = catalogue.scenarios[name]
    try:
        timeline = lab.run(scenario, level)
    except ServerError as exc:  # e.g. a role that may not SET deadlock_timeout on this server
        pytest.skip(str(exc))
    verdict = check(scenario, timeline)
    if not verdict.matches_expectation:
        report = render_timeline(RunReport(scenario, timeline, verdict), width=140)
        pytest.fail("\n".join([*mismatch_lines(verdict), report]), pytrace=False)


CLAIMS = [pytest.param(name, id=name) for name, s in Catalogue().scenarios.items() if s.claim is not None]


@pytest.mark.parametrize("name", CLAIMS)
def test_each_claim_checked_on_the_server_is_what_the_scenario_says(lab: Lab, catalogue: Catalogue, name: str) -> None:
    scenario = catalogue.scenarios[name]
    assert scenario.claim is not None
    verdict = check_claim(scenario, lab.run(scenario, scenario.claim.level))
    assert verdict.true == scenario.claim.holds, f"{verdict.says}: evidence: {'; '.join(verdict.evidence)}"
