"""The example project (examples/bank) as a user runs it: `pytest` in its folder, a process of
its own, txnlab's plugin loaded through its entry point. The fixed transfer passes, the naive
first version fails with a readable story, and two pytest-xdist workers work side by side."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "bank"
pytestmark = pytest.mark.database


@pytest.fixture
def bank(tmp_path: Path, server_dsn: str):  # type: ignore[no-untyped-def]
    """Run pytest in a copy of the example; returns (exit code, output)."""
    project = tmp_path / "bank"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    env = {**os.environ, "TXNLAB_DSN": server_dsn, "COLUMNS": "100", "NO_COLOR": "1"}

    def run(*args: str) -> tuple[int, str]:
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=project,
                              env=env, capture_output=True, text=True, timeout=300)
        return done.returncode, done.stdout + done.stderr

    return run


def test_the_example_passes_against_the_fixed_transfer(bank) -> None:  # type: ignore[no-untyped-def]
    code, output = bank("-q")
    assert code == 0, output
    assert "6 passed" in output  # two tests of its own, and its scenario file at four levels


def test_the_naive_transfer_fails_with_the_balances_and_the_timeline(bank) -> None:  # type: ignore[no-untyped-def]
    code, output = bank("-q", "--transfer=naive")
    assert code == 1, output
    assert "1 failed, 5 passed" in output
    assert "assert {1: 105, 2: 95} == {1: 95, 2: 105}" in output  # the lost update, in the test's own words
    assert "txnlab timeline" in output
    assert "waits for s1 (row lock" in output  # what the server said, not what the test assumed
    assert "invariant balances match the ledger: broken" in output  # the whole run: asserted after the block
    assert "src/txnlab" not in output and "site-packages/txnlab" not in output


def test_the_example_runs_on_two_xdist_workers(bank) -> None:  # type: ignore[no-untyped-def]
    code, output = bank("-q", "-n", "2")
    assert code == 0, output
    assert "6 passed" in output
