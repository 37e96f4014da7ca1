"""The plugin's fixtures: a server, a Lab on a scratch database, and interleavings of the
project's own functions (docs/testing-your-code.md).

The engine (runner, scenario, render) is imported when a fixture is first used, not when
pytest loads the plugin: a project that uses none of it pays nothing for it at startup.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from txnlab.errors import TxnlabError
from txnlab.levels import Level
from txnlab.pytest_plugin.server import chosen_server

if TYPE_CHECKING:
    from txnlab.runner.interleave import Interleaving
    from txnlab.runner.lab import DrivenRun, Lab
    from txnlab.scenario.model import Scenario

STEP_TIMEOUT_INI = "txnlab_step_timeout"
# The interleavings a test ran, for its failure report: each one's scenario, run and server version.
INTERLEAVINGS: pytest.StashKey[list[tuple[Scenario, DrivenRun, str]]] = pytest.StashKey()


def step_timeout(config: pytest.Config) -> float:
    """The ini's `txnlab_step_timeout` in seconds (default 5): how long one step (a statement, a
    call up to its point) may run before txnlab cancels it and ends the run."""
    text = config.getini(STEP_TIMEOUT_INI)
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise pytest.UsageError(f"{STEP_TIMEOUT_INI} = {text}: give a positive number of seconds")
    return seconds


@pytest.fixture(scope="session")
def txnlab_server(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """The server the tests run on (see pytest_plugin.server.chosen_server): its DSN, and
    whether it is txnlab's embedded server. A failure to reach it is one line."""
    with _one_line():
        return chosen_server(request)


@pytest.fixture(scope="session")
def txnlab_lab(request: pytest.FixtureRequest, txnlab_server: tuple[str, bool]) -> Iterator[Lab]:
    """A Lab in a scratch database of this pytest process's own (so each pytest-xdist worker
    has its own), created on first use and dropped when the session ends, with the sessions,
    lock monitor and admin connection it holds."""
    with lab_on(txnlab_server, step_timeout(request.config)) as lab:
        yield lab


@contextmanager
def lab_on(server: tuple[str, bool], timeout: float) -> Iterator[Lab]:
    """open_lab on the chosen server; what the runs changed on the server outside the
    scratch database (a role, a setting) is a warning (txnlab's embedded server: undone)."""
    from txnlab.cli.run import describe_change
    from txnlab.runner.lab import open_lab
    from txnlab.server.footprint import ServerChange

    dsn, embedded = server
    changes: list[ServerChange] = []
    with _one_line(), open_lab(dsn, server_changes=changes, undo_server_changes=embedded, step_timeout=timeout) as lab:
        yield lab
    for change in changes:
        warnings.warn(f"txnlab: {describe_change(change)}", stacklevel=3)  # at the fixture that opened the lab


@pytest.fixture
def txnlab_interleave(
    request: pytest.FixtureRequest, txnlab_lab: Lab,
) -> Callable[..., AbstractContextManager[Interleaving]]:
    """`txnlab_interleave(setup=SQL, sessions=("s1", "s2"), level="read committed",
    invariants={name: SQL}, final=SQL)`: a context manager giving an Interleaving of the
    project's functions over those sessions, in a fresh schema filled by `setup`. When the
    block ends, paused calls are ended, calls in flight waited for, every session rolled
    back, and `interleaving.timeline` holds what happened; if the test fails, the timeline
    is printed with the failure.

    What goes wrong at the block's start (a bad session name or level, setup SQL that fails,
    a block inside another's) or at its end (invariant or `final` SQL that fails, a run that
    ended early, a call's failure seen only then) fails the test in one line: `txnlab: ...`.
    What a move inside the block raises (InterleaveError, a function's own exception) is
    raised there, for the test to catch."""
    from txnlab.runner.interleave import interleaving
    from txnlab.scenario.interleaving_source import interleaving_scenario

    shown = request.node.stash.setdefault(INTERLEAVINGS, [])

    @contextmanager
    def interleave(
        *, setup: str | Sequence[str] = (), sessions: Sequence[str] = ("s1", "s2"),
        level: str | Level = Level.READ_COMMITTED, invariants: Mapping[str, str] | None = None,
        final: str | Sequence[str] = (),
    ) -> Iterator[Interleaving]:
        __tracebackhide__ = True
        stack = ExitStack()
        with _one_line():
            chosen = level if isinstance(level, Level) else Level.parse(level)
            scenario = interleaving_scenario(request.node.name, Path(str(request.node.path)), sessions, setup,
                                             invariants, final, chosen)
            try:
                run = stack.enter_context(txnlab_lab.driving(scenario, chosen))
                shown.append((scenario, run, txnlab_lab.server_version))
                moves = stack.enter_context(interleaving(run))
            except BaseException:
                stack.close()  # a run begun must end, or the lab stays "in the middle of a run"
                raise
        try:
            yield moves
        except BaseException:
            if not stack.__exit__(*sys.exc_info()):
                raise
        else:
            with _one_line():
                stack.close()

    return interleave


@contextmanager
def _one_line() -> Iterator[None]:
    """txnlab's own errors (a server it cannot reach, a bad DSN) as one line, not a traceback."""
    __tracebackhide__ = True
    try:
        yield
    except TxnlabError as exc:
        raise pytest.fail.Exception(f"txnlab: {exc}", pytrace=False) from None  # no "during handling" chain
