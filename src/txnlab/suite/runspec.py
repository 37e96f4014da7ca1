"""One spec's isolationtester output, from the engine's runner and renderer."""

from __future__ import annotations

from txnlab.runner.lab import Lab
from txnlab.scenario.model import Scenario


def spec_output(lab: Lab, scenario: Scenario) -> str:
    """Run every permutation of the spec in `lab` and return what isolationtester prints."""
    raise NotImplementedError("waiting for the engine's runner (branch i10-engine)")
