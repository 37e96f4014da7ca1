"""A failed test's interleavings, printed with its failure: each run's timeline as txnlab
shows it, up to where the test stopped if it failed inside the block."""

from __future__ import annotations

import time

from txnlab.runner.lab import DrivenRun
from txnlab.scenario.model import Scenario
from txnlab.timeline import Timeline
from txnlab.workflow import report
from txnlab.render.text import render_timeline


def interleaving_report(scenario: Scenario, run: DrivenRun, server_version: str, width: int, color: bool) -> str:
    """The run's timeline; for a run that did not finish (the test failed inside the block, or
    its end failed), the steps up to there."""
    timeline = run.timeline
    heading = ""
    if timeline is None:
        timeline = Timeline(scenario=scenario.name, level=scenario.levels[0], sessions=tuple(run.scheduler.sessions),
                            permutation=(), server_version=server_version, events=run.scheduler.events,
                            duration=time.perf_counter() - run.scheduler.origin)
        heading = "the interleaving did not finish; its steps up to the failure:\n"
    return heading + render_timeline(report(scenario, timeline), width=width, color=color)
