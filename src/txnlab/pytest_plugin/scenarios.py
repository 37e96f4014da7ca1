"""Scenario files as tests: every `*.txn.yaml` pytest meets, and the `.yaml`, `.yml`, `.py`
and `.spec` scenarios under the directories the ini's `txnlab_scenarios` names.

One test per scenario, isolation level and permutation (`transfer-funds[read committed]`,
`transfer-funds[read committed, permutation 2]`); a `.spec` is one test, compared with its
expected output as PostgreSQL's isolation suite compares it. A test fails when the server
did something other than the scenario expects, and its report is the run's timeline with
what differs; a broken scenario file is one line at collection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from txnlab.errors import TxnlabError
from txnlab.levels import Level
from txnlab.pytest_plugin.fixtures import lab_on, step_timeout

if TYPE_CHECKING:  # the engine is imported when a scenario file is met (see fixtures' docstring)
    from txnlab.checks import Verdict
    from txnlab.runner.lab import Lab
    from txnlab.scenario.model import Scenario

SCENARIOS_INI = "txnlab_scenarios"
SCENARIO_SUFFIX = ".txn.yaml"
SUFFIXES = (".yaml", ".yml", ".py", ".spec")


class ScenarioFailed(Exception):
    """A scenario's run differed from its expectations; the message is the whole report."""


def is_scenario_file(path: Path, config: pytest.Config) -> bool:
    """`*.txn.yaml` anywhere, or a scenario suffix under a `txnlab_scenarios` directory (a
    name starting with `_` is a helper module, as in the catalogue, and `conftest.py` is pytest's)."""
    if path.name.endswith(SCENARIO_SUFFIX):
        return True
    if path.suffix not in SUFFIXES or path.name.startswith("_") or path.name == "conftest.py":
        return False
    folders = [Path(str(p)).resolve() for p in config.getini(SCENARIOS_INI)]
    return any(path.resolve().is_relative_to(folder) for folder in folders)


class ScenarioFile(pytest.File):
    """A scenario file; its tests are its levels and permutations (see the module's doc)."""

    def collect(self) -> Iterator[pytest.Item]:
        from txnlab.scenario.catalogue import load_scenario

        try:
            scenario = load_scenario(self.path)
        except TxnlabError as exc:
            raise self.CollectError(f"txnlab: {exc}") from None
        if scenario.isolationtester:
            yield ScenarioTest.from_parent(self, name=scenario.name, callobj=_spec_test(scenario))
            return
        for level in scenario.levels:
            for index, permutation in enumerate(scenario.permutations, start=1):
                place = f", permutation {index}" if index > 1 else ""
                yield ScenarioTest.from_parent(self, name=f"{scenario.name}[{level.value}{place}]",
                                               callobj=_scenario_test(scenario, level, permutation))


class ScenarioTest(pytest.Function):
    """One run of a scenario: a pytest function (so that it gets the plugin's fixtures) whose
    location is the scenario file and whose failure is the run's report, not a traceback."""

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, 0, self.name  # the file's first line: a skip or failure is the scenario's

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, TxnlabError):
            return f"txnlab: {excinfo.value}"
        return super().repr_failure(excinfo, style)


def _scenario_test(scenario: Scenario, level: Level, permutation: tuple[str, ...]) -> Callable[..., None]:
    def test(txnlab_lab: Lab, request: pytest.FixtureRequest) -> None:
        from txnlab.render.text import render_timeline
        from txnlab.workflow import run_permutations

        (report,) = run_permutations(txnlab_lab, scenario, level, [permutation])
        verdict = report.verdict
        if verdict.could_not_run:
            _skip(f"this server cannot run it: {verdict.could_not_run}")
        if verdict.differs or verdict.ended_early:
            raise ScenarioFailed(_headline(verdict) + "\n\n" + render_timeline(report, **_terminal(request.config)))

    return test


def _spec_test(scenario: Scenario) -> Callable[..., None]:
    def test(txnlab_server: tuple[str, bool], request: pytest.FixtureRequest) -> None:
        from txnlab.suite.compare import compare
        from txnlab.suite.discovery import expected_dir_for, expected_outputs
        from txnlab.suite.runspec import spec_output

        expected = expected_outputs(scenario.name, expected_dir_for(scenario.source, None))
        if not expected:
            _skip(f"no expected output for it: {scenario.name}.out is not in {expected_dir_for(scenario.source, None)}")
        with lab_on(txnlab_server, step_timeout(request.config)) as lab:  # a spec's objects live in public: a database of its own
            output = spec_output(lab, scenario)
        if output.refused:
            _skip(f"this server cannot run it: {output.refused}")
        comparison = compare(output.text, expected, f"{scenario.name} (this run)")
        if comparison.matched is None:
            raise ScenarioFailed(f"{scenario.name}: the output differs from isolationtester's expected "
                                 f"output\n\n{comparison.diff}")

    return test


def _skip(reason: str) -> NoReturn:
    """Skip the scenario's test, reported at the scenario file (pytest's own skip marks use
    the same flag), not at this line of txnlab."""
    raise pytest.skip.Exception(reason, _use_item_location=True)


def _headline(verdict: Verdict) -> str:
    if verdict.ended_early:
        return f"{verdict.scenario} at {verdict.level.value}: the run ended early"
    count = len(verdict.mismatches)
    return (f"{verdict.scenario} at {verdict.level.value}: the server did not do what the scenario expects "
            f"({count} difference{'s' if count != 1 else ''})")


def _terminal(config: pytest.Config) -> dict[str, Any]:
    """The width and colour of pytest's terminal, for reports printed there."""
    writer = config.get_terminal_writer()
    return {"width": max(writer.fullwidth, 80), "color": writer.hasmarkup}
