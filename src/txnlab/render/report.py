"""What every renderer receives: a scenario's run at one level, with its verdict."""

from __future__ import annotations

from dataclasses import dataclass

from txnlab.checks import Verdict
from txnlab.history.model import Analysis
from txnlab.scenario.model import Scenario
from txnlab.timeline import Timeline


@dataclass(frozen=True)
class RunReport:
    """One run and its verdict. `place` is (number, count) of its permutation among the
    permutations run of this scenario and level (`--permutations`, a `.spec`'s), numbered from 1;
    None for a run of the scenario's own single order, as `txnlab run` makes without the option."""

    scenario: Scenario
    timeline: Timeline
    verdict: Verdict
    place: tuple[int, int] | None = None
    # The run's history, dependency edges and derived anomalies (txnlab.history.analyse); None
    # when the run recorded no history.
    analysis: Analysis | None = None
