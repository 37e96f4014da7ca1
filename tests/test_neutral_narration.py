"""A driver-neutral scenario tells the same truth whichever driver runs it (`--driver`): its
words name no driver, and each narration that says the driver sends BEGIN just before a step
is checked against what psycopg2, psycopg 3 and asyncpg really put on the wire."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from txnlab.levels import Level
from txnlab.runner.drivers import NAMES
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue

CATALOGUE = Catalogue()
NEUTRAL = {name: s for name, s in CATALOGUE.scenarios.items() if s.not_driver_neutral is None}
DRIVER_NAMES = re.compile(r"psycopg|asyncpg|sqlalchemy", re.I)
SOURCE_LINE = re.compile(r"^\s*source:")  # a claim's source may be the title of a blog post
BEGIN_JUST_BEFORE = re.compile(r"sends? BEGIN (just )?before|sent BEGIN before|began just before")
NARRATED = [
    pytest.param(name, step.name, driver, id=f"{driver}-{name}-{step.name}")
    for name, scenario in NEUTRAL.items()
    for step in scenario.steps.values()
    if BEGIN_JUST_BEFORE.search(step.narration or "")
    for driver in NAMES
]


def test_no_driver_neutral_scenario_names_a_driver_in_its_words() -> None:
    named = [f"{s.source.name}:{number}" for s in NEUTRAL.values()
             for number, line in enumerate(s.source.read_text(encoding="utf-8").splitlines(), 1)
             if DRIVER_NAMES.search(line) and not SOURCE_LINE.match(line)]
    assert named == []


def test_narrations_that_say_the_driver_sends_begin_exist() -> None:
    assert len({name for name, *_ in (p.values for p in NARRATED)}) >= 8


@pytest.mark.parametrize(("name", "step", "driver"), NARRATED)
def test_a_narration_saying_the_driver_sends_begin_just_before_a_step_is_true_on_every_driver(
    lab: Lab, name: str, step: str, driver: str
) -> None:
    scenario = replace(NEUTRAL[name].with_driver(driver), capture=True)
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    sent = [e.sent for e in timeline.step_events(step) if e.sent][0]
    assert sent[0].upper().startswith("BEGIN") and len(sent) >= 2, sent
