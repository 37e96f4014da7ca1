"""One spec's isolationtester output, from the engine's runner and renderer."""

from __future__ import annotations

from dataclasses import dataclass

from txnlab.levels import Level
from txnlab.render.isolationtester import render_isolationtester
from txnlab.runner.execute import SERVER_SIDE_CLASSES
from txnlab.runner.lab import Lab
from txnlab.scenario.model import Scenario
from txnlab.timeline import Outcome, Timeline


@dataclass(frozen=True)
class SpecOutput:
    """What running a spec gave: text, what isolationtester prints for it; ended_early: a
    setup failed, so (as isolationtester) no teardown ran and its objects are left behind;
    refused: when that setup failed for the server's side (a missing privilege, feature or
    resource: SQLSTATE 42501, 0A000, classes 53, 58, XX), the error, else None."""

    text: str
    ended_early: bool
    refused: str | None


def spec_output(lab: Lab, scenario: Scenario) -> SpecOutput:
    """Run every permutation of the spec in `lab`'s database, as isolationtester does.
    Raises what Lab.run_permutations raises: ScenarioError (a step that hangs, an invalid
    permutation), ServerError (a connection lost)."""
    timelines = lab.run_permutations(scenario, Level.READ_COMMITTED)
    return SpecOutput(render_isolationtester(scenario, timelines), any(t.ended_early for t in timelines),
                      _refusal(timelines))


def _refusal(timelines: list[Timeline]) -> str | None:
    for timeline in timelines:
        for event in timeline.setup:
            error = event.error
            if event.outcome is Outcome.ERROR and error and (error.sqlstate or "").startswith(SERVER_SIDE_CLASSES):
                return f"its setup failed on this server: {error.sqlstate} {error.message}"
    return None
