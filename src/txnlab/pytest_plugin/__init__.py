"""txnlab's pytest plugin: test your own application's transactions against a real server.

Registered through the `pytest11` entry point, so installing txnlab is enough; a project
with no scenario files and no txnlab fixture in use notices nothing. It provides
(docs/testing-your-code.md):

- scenario files as tests (pytest_plugin.scenarios): `*.txn.yaml`, and the scenarios under
  the ini's `txnlab_scenarios` directories;
- fixtures (pytest_plugin.fixtures): `txnlab_server`, `txnlab_lab`, `txnlab_interleave`;
- the points an interleaved function pauses at, `before` and `after` (runner.interleave).
"""

from __future__ import annotations

from collections.abc import Generator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

from txnlab.pytest_plugin.fixtures import (
    INTERLEAVINGS, STEP_TIMEOUT_INI, step_timeout, txnlab_interleave, txnlab_lab, txnlab_server,
)
from txnlab.pytest_plugin.scenarios import SCENARIOS_INI, ScenarioFile, is_scenario_file
from txnlab.pytest_plugin.server import DSN_OPTION, SERVER_FIXTURE_INI

# What a test imports from here (`from txnlab.pytest_plugin import before`), loaded on first use
# (PEP 562), so that pytest loading the plugin does not import the engine.
_INTERLEAVE_NAMES = ("Call", "Interleaving", "InterleaveError", "InterleavingEnded", "Point", "after", "before")
__all__ = [*_INTERLEAVE_NAMES, "txnlab_interleave", "txnlab_lab", "txnlab_server"]


def __getattr__(name: str) -> Any:
    if name in _INTERLEAVE_NAMES:
        return getattr(import_module("txnlab.runner.interleave"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("txnlab", "txnlab: transactions against a real PostgreSQL")
    group.addoption(DSN_OPTION, metavar="DSN", default=None,
                    help="The server to run on (libpq DSN or URL); default: the ini's txnlab_server_fixture, "
                         "else TXNLAB_DSN, else DATABASE_URL, else txnlab's embedded server.")
    parser.addini(SCENARIOS_INI, type="paths", default=[],
                  help="txnlab: directories whose .yaml, .yml, .py and .spec files are scenarios to run as tests.")
    parser.addini(SERVER_FIXTURE_INI, default="",
                  help="txnlab: the pytest-postgresql process fixture whose server to use "
                       "(postgresql_proc, postgresql_noproc, or one a factory made).")
    parser.addini(STEP_TIMEOUT_INI, default="5",
                  help="txnlab: seconds one step may run before the run is stopped (default 5).")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse, before any test, settings that cannot work: a step timeout that is not a positive
    number; a `txnlab_scenarios` directory that does not exist (a typo would collect nothing)."""
    step_timeout(config)
    for folder in config.getini(SCENARIOS_INI):
        if not Path(str(folder)).is_dir():
            raise pytest.UsageError(f"{SCENARIOS_INI}: {folder} is not a directory")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    if is_scenario_file(file_path, parent.config):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that ran interleavings gets each one's timeline as a report section."""
    test_report = yield
    if call.when != "call":  # the test's own phase: a fixture's teardown failing is not the run's story
        return test_report
    runs = item.stash.get(INTERLEAVINGS, [])
    item.stash[INTERLEAVINGS] = []  # the runs' events are not kept for the rest of the session
    if test_report.failed and runs:
        from txnlab.pytest_plugin.report import interleaving_report

        writer = item.config.get_terminal_writer()
        for index, (scenario, run, version) in enumerate(runs, start=1):
            title = "txnlab timeline" + (f" {index}" if len(runs) > 1 else "")
            text = interleaving_report(scenario, run, version, max(writer.fullwidth, 80), writer.hasmarkup)
            test_report.sections.append((title, text))
    return test_report
