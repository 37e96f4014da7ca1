"""One spec's isolationtester output, from the engine's runner and renderer."""

from __future__ import annotations

from txnlab.levels import Level
from txnlab.render.isolationtester import render_isolationtester
from txnlab.runner.lab import Lab
from txnlab.scenario.model import Scenario


def spec_output(lab: Lab, scenario: Scenario) -> str:
    """Run every permutation of the spec in `lab`'s database, as isolationtester does, and
    return what it prints (the text pg_isolation_regress compares with expected/NAME.out).
    Raises what Lab.run_permutations raises: ScenarioError (a step that hangs, an invalid
    permutation), ServerError (a connection lost)."""
    return render_isolationtester(scenario, lab.run_permutations(scenario, Level.READ_COMMITTED))
