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


@pytest.mark.parametrize("level", [RR, SER])
def test_a_keyed_read_whose_values_another_version_of_the_object_also_has_is_inferred(
    lab: Lab, level: Level,
) -> None:
    report = run_case(lab, "lock-then-snapshot", level)
    read = next(r for r in report.analysis.history.reads if r.step == "b_read")
    assert read.by_key and len(read.candidates) == 1  # the snapshot's filter left one, yet v = 1 twice
    edges = [e for e in report.analysis.edges if "b_read" in e.steps]
    assert edges and all(e.inferred for e in edges)


SESSION_LEVEL = """
name: setup-default-level
title: a session's setup SQL raises its default level
summary: x's own BEGIN starts at the default its setup set, when it is autocommit
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO t VALUES (1, 1), (2, 2);
sessions:
  x: {autocommit: AUTOCOMMIT, setup: "SETUP"}
  a: {}
steps:
  - {name: x_begin, session: x, sql: "BEGIN"}
  - {name: x_snap, session: x, sql: "SELECT current_setting('transaction_isolation') AS level"}
  - {name: a_r2, session: a, sql: "SELECT id, v FROM t WHERE id = 2"}
  - {name: a_w1, session: a, sql: "UPDATE t SET v = 10 WHERE id = 1"}
  - {name: a_c, session: a, sql: "COMMIT"}
  - {name: x_r1, session: x, sql: "SELECT id, v FROM t WHERE id = 1"}
  - {name: x_w2, session: x, sql: "UPDATE t SET v = 20 WHERE id = 2"}
  - {name: x_c, session: x, sql: "COMMIT"}
expect:
  all: {}
"""


@pytest.mark.parametrize(("autocommit", "setup", "server_says", "expected"), [
    ("true", "SET default_transaction_isolation = 'repeatable read'", "repeatable read", ["G2-item"]),
    ("true", "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", "serializable", ["G2-item"]),
    ("true", "SET default_transaction_isolation = 'repeatable read'; RESET default_transaction_isolation",
     "read committed", []),
    ("false", "SET default_transaction_isolation = 'repeatable read'", "read committed", []),
])
def test_the_level_a_sessions_setup_sql_sets_is_the_level_its_own_begin_starts(
    lab: Lab, tmp_path: Path, autocommit: str, setup: str, server_says: str, expected: list[str],
) -> None:
    path = tmp_path / "setup-default-level.yaml"
    path.write_text(SESSION_LEVEL.replace("AUTOCOMMIT", autocommit).replace("SETUP", setup))
    report = run_cell(lab, load_scenario(path), RC)
    assert next(e for e in report.timeline.events if e.step == "x_snap").rows == ((server_says,),)
    assert names(report) == expected


def test_matching_a_few_thousand_returned_rows_is_linear(lab: Lab) -> None:
    started = time.perf_counter()
    report = run_case(lab, "big", RC)
    elapsed = time.perf_counter() - started
    assert len([r for r in report.analysis.history.reads if r.step == "a_all"]) == 3000
    assert elapsed < 8.0, f"{elapsed:.1f} s"


@pytest.mark.parametrize("level", [RC, RR])
def test_a_value_read_under_another_time_zone_is_not_compared_as_text_and_the_write_skew_is_derived(
    lab: Lab, level: Level,
) -> None:
    report = run_case(lab, "timezone", level)
    assert names(report) == ["G2-item"]
    read = next(r for r in report.analysis.history.reads if r.step == "a_r")
    assert read.columns == ("id",)
    assert any("a_r read ev.at" in gap and "timezone" in gap for gap in report.analysis.history.gaps)
    returned = {p.step: p.returned for p in report.analysis.history.predicate_reads}
    assert returned["a_r"] == (("1",),)


def test_a_condition_read_under_the_sessions_own_time_zone_gives_no_predicate_edge(lab: Lab) -> None:
    report = run_case(lab, "timezone-predicate", RC)
    assert next(e for e in report.timeline.events if e.step == "a_r").rows == ()  # 09:00 in Tokyo: no match
    assert not [e for e in report.analysis.edges if e.predicate]
    assert names(report) == []
    assert any(g.startswith("a_r's condition on ev") and "timezone" in g for g in report.analysis.history.gaps)


def test_the_log_prints_values_as_a_session_with_default_settings_does_whatever_the_writer_set(lab: Lab) -> None:
    report = run_case(lab, "timezone-writer", RC)
    read = next(r for r in report.analysis.history.reads if r.step == "b_r")
    assert read.columns == ("id", "at")
    assert read.version is not None and read.version.writer == "a"
    assert [e.kind for e in report.analysis.edges] == ["wr"]


def test_the_same_text_run_in_several_transactions_of_a_session_is_credited_in_log_order(lab: Lab) -> None:
    report = run_case(lab, "autocommit-repeat", RC)
    writers = [(v.writer, v.step) for v in report.analysis.history.versions if v.seq is not None]
    assert writers == [("w", "w_1"), ("w#2", "w_2")]
    assert not [g for g in report.analysis.history.gaps if "credited" in g]


def test_an_anti_dependency_says_what_the_overwrite_changed_not_the_unchanged_column_that_was_read(
    lab: Lab,
) -> None:
    report = run_case(lab, "read-key-only", RC)
    edge = next(e for e in report.analysis.edges if e.kind == "rw")
    assert edge.evidence == ("alice read doctors[bob].name = bob at alice_finds_bob, the version bob overwrote"
                             " with doctors[bob].on_call = f at bob_off")
