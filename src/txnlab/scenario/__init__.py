"""Stage 1 of the pipeline: scenario files (YAML or Python) become validated `Scenario` models."""

from txnlab.scenario.catalogue import Catalogue, load_scenario
from txnlab.scenario.model import (
    AnomalyRule,
    Condition,
    Expectation,
    Scenario,
    SessionSpec,
    Step,
)

__all__ = [
    "AnomalyRule",
    "Catalogue",
    "Condition",
    "Expectation",
    "Scenario",
    "SessionSpec",
    "Step",
    "load_scenario",
]
