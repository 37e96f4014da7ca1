"""One spec's isolationtester output, from the engine's runner and renderer."""

from __future__ import annotations

from txnlab.levels import Level
from txnlab.render.isolationtester import render_isolationtester
from txnlab.runner.lab import Lab
from txnlab.scenario.model import Scenario


def spec_output(lab: Lab, scenario: Scenario) -> tuple[str, bool]:
    """Run every permutation of the spec in `lab`'s database, as isolationtester does: what
    it prints (the text pg_isolation_regress compares with expected/NAME.out), and whether
    the spec ended early (a failed setup: no teardown ran, its objects are left behind).
    Raises what Lab.run_permutations raises: ScenarioError (a step that hangs, an invalid
    permutation), ServerError (a connection lost)."""
    timelines = lab.run_permutations(scenario, Level.READ_COMMITTED)
    return render_isolationtester(scenario, timelines), any(t.ended_early for t in timelines)
