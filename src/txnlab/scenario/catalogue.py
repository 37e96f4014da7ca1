"""Find scenarios: the packaged catalogue (the repository's `scenarios/` folder) or a file path."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from functools import cached_property
from importlib import resources
from pathlib import Path

from txnlab.errors import UsageError
from txnlab.scenario.model import Scenario
from txnlab.scenario.python_source import load_python_scenario
from txnlab.scenario.validate import build_scenario
from txnlab.scenario.yaml_source import read_yaml

SCENARIO_SUFFIXES = (".yaml", ".yml", ".py")


def default_catalogue_dir() -> Path:
    """The catalogue inside an installed wheel, else `scenarios/` of the source checkout."""
    packaged = Path(str(resources.files("txnlab"))) / "catalogue"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "scenarios"


def load_scenario(path: Path) -> Scenario:
    """Load and validate one scenario file (YAML or Python)."""
    if path.suffix == ".py":
        return load_python_scenario(path)
    return build_scenario(read_yaml(path), path)


class Catalogue:
    """The scenarios of one folder, by name."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_catalogue_dir()

    def files(self) -> Iterator[Path]:
        for path in sorted(self.directory.rglob("*")):
            if path.suffix in SCENARIO_SUFFIXES and not path.name.startswith(("_", ".")):
                yield path

    @cached_property
    def scenarios(self) -> dict[str, Scenario]:
        loaded: dict[str, Scenario] = {}
        for path in self.files():
            scenario = load_scenario(path)
            if scenario.name in loaded:
                raise UsageError(
                    f"{path}: scenario name {scenario.name!r} is already used by "
                    f"{loaded[scenario.name].source}"
                )
            loaded[scenario.name] = scenario
        return loaded

    def resolve(self, name_or_path: str) -> Scenario:
        """A catalogue name, or the path of a scenario file."""
        candidate = Path(name_or_path)
        if candidate.suffix in SCENARIO_SUFFIXES or candidate.exists():
            if not candidate.is_file():
                raise UsageError(f"no scenario file at {name_or_path}")
            if candidate.name.startswith("_"):
                raise UsageError(f"{name_or_path} is a helper module shared by scenarios (its name starts with _)")
            return load_scenario(candidate)
        if name_or_path in self.scenarios:
            return self.scenarios[name_or_path]
        close = difflib.get_close_matches(name_or_path, list(self.scenarios), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `txnlab list` shows them all"
        raise UsageError(f"no scenario named {name_or_path!r}{hint}")

    def with_tag(self, tag: str) -> list[Scenario]:
        return [s for s in self.scenarios.values() if tag in s.tags]
