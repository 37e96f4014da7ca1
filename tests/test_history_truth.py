"""The derived history never says more than the run showed: a write goes to the transaction
that really made it (or to none, with a gap), a snapshot is placed at the statement that took
it, a session's own default level counts, and a read is "observed" only when its values
single out one version of its object. Each case is a reviewer's repro
(tests/history_cases/*.yaml), run on the real server.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from txnlab.levels import Level
from txnlab.render.report import RunReport
from txnlab.runner.lab import Lab
from txnlab.scenario.catalogue import load_scenario
from txnlab.workflow import run_cell

CASES = Path(__file__).parent / "history_cases"
RC, RR, SER = Level.READ_COMMITTED, Level.REPEATABLE_READ, Level.SERIALIZABLE


def run_case(lab: Lab, name: str, level: Level) -> RunReport:
    return run_cell(lab, load_scenario(CASES / f"{name}.yaml"), level)


def names(report: RunReport) -> list[str]:
    return [a.name for a in report.analysis.anomalies]


@pytest.mark.parametrize("level", [RC, RR, SER])
@pytest.mark.parametrize(("case", "early"), [("zero-row-attribution", "w"), ("savepoint-attribution", "a")])
def test_a_write_is_never_credited_to_an_earlier_transaction_that_ran_the_same_text(
    lab: Lab, case: str, early: str, level: Level,
) -> None:
    report = run_case(lab, case, level)
    assert names(report) == []
    writers = {v.writer for v in report.analysis.history.versions if v.seq is not None}
    assert early not in writers


@pytest.mark.parametrize("level", [RR, SER])
def test_a_repeatable_read_snapshot_is_taken_by_the_first_statement_that_needs_one_not_by_lock_table(
    lab: Lab, level: Level,
) -> None:
    report = run_case(lab, "lock-then-snapshot", level)
    assert names(report) == []
    read = next(r for r in report.analysis.history.reads if r.step == "b_read")
    assert read.version is not None and read.version.writer == "a"


def test_a_session_that_sets_its_own_default_level_is_derived_at_that_level(lab: Lab) -> None:
    report = run_case(lab, "session-default-level", RC)
    assert names(report) == ["G2-item"]


def test_a_read_committed_for_update_after_a_wait_misses_the_insert_it_did_not_return(lab: Lab) -> None:
    report = run_case(lab, "rc-for-update-after-wait", RC)
    assert names(report) == ["G-single"]
