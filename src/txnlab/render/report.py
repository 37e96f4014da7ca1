"""What every renderer receives: a scenario's run at one level, with its verdict."""

from __future__ import annotations

from dataclasses import dataclass

from txnlab.checks import Verdict
from txnlab.scenario.model import Scenario
from txnlab.timeline import Timeline


@dataclass(frozen=True)
class RunReport:
    scenario: Scenario
    timeline: Timeline
    verdict: Verdict
