"""Build a Scenario from YAML text inside a test, as if it were a file."""

from __future__ import annotations

import textwrap
from pathlib import Path

from txnlab.scenario import Scenario
from txnlab.scenario.validate import build_scenario
from txnlab.scenario.yaml_source import read_yaml


def scenario_from_yaml(text: str, name: str = "inline.yaml") -> Scenario:
    return build_scenario(read_yaml(Path(name), textwrap.dedent(text)), Path(name))
