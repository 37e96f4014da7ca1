"""An UPDATE's or DELETE's WHERE clause is a read by condition: the server re-evaluates it like
a SELECT's, and the version of each row it saw is told by facts (the rows it wrote, READ
COMMITTED's re-check of a row it waited for, REPEATABLE READ's snapshot), so Hermitage's
PMP-write and G-single-write-1 are derived where they happen. Real runs on the real server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from txnlab.history.model import Edge
from txnlab.history.predicates import predicate_read
from txnlab.levels import Level
from txnlab.render.report import RunReport
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue
from txnlab.scenario.catalogue import load_scenario
from txnlab.timeline import Outcome
from txnlab.workflow import run_cell

RC, RR, SER = Level.READ_COMMITTED, Level.REPEATABLE_READ, Level.SERIALIZABLE
TABLES = frozenset({"accounts", "ledger"})


def run_named(lab: Lab, catalogue: Catalogue, name: str, level: Level) -> RunReport:
    return run_cell(lab, next(s for s in catalogue.scenarios.values() if s.name == name), level)


def edge_on(report: RunReport, kind: str, obj: str) -> Edge:
    return next(e for e in report.analysis.edges if e.kind == kind and e.object == obj and e.predicate)


@pytest.mark.parametrize(("sql", "expected"), [
    ("DELETE FROM accounts WHERE balance = 20", ("DELETE", "accounts", "accounts", "balance = 20")),
    ("UPDATE accounts AS a SET balance = balance + 10 WHERE a.id = 1 RETURNING *",
     ("UPDATE", "accounts", "a", "a.id = 1")),
    ("UPDATE accounts SET balance = 0", ("UPDATE", "accounts", "accounts", "TRUE")),
    ("SELECT * FROM accounts WHERE balance > 10", ("SELECT", "accounts", "accounts", "balance > 10")),
])
def test_an_update_or_delete_of_one_run_table_is_a_read_by_condition_like_a_select(
    sql: str, expected: tuple[str, str, str, str],
) -> None:
    candidate = predicate_read(sql, TABLES)
    assert candidate is not None
    assert (candidate.command, candidate.table, candidate.alias, candidate.predicate) == expected


@pytest.mark.parametrize("sql", [
    "UPDATE accounts SET balance = 0 FROM ledger WHERE ledger.id = accounts.id",
    "DELETE FROM accounts USING ledger WHERE ledger.id = accounts.id",
    "WITH gone AS (SELECT 1) DELETE FROM accounts",
    "UPDATE accounts SET balance = (SELECT 1) WHERE id = 1",
    "DELETE FROM accounts WHERE id IN (SELECT id FROM ledger)",
    "DELETE FROM accounts WHERE owner = CURRENT_USER",
    "DELETE FROM accounts WHERE CURRENT OF c",
    "DELETE FROM public.accounts WHERE id = 1",
    "DELETE FROM other WHERE id = 1",
    "INSERT INTO accounts VALUES (1)",
])
def test_a_write_that_joins_nests_or_reads_session_state_is_no_read_by_condition(sql: str) -> None:
    assert predicate_read(sql, TABLES) is None


def test_pmp_write_at_read_committed_is_a_g_single_cycle_through_the_delete_s_condition(
    lab: Lab, catalogue: Catalogue,
) -> None:
    report = run_named(lab, catalogue, "hermitage-pmp-write", RC)
    assert [a.name for a in report.analysis.anomalies] == ["G-single"]
    missed = edge_on(report, "rw", "test[1]")
    assert (missed.source, missed.target, missed.inferred) == ("t2", "t1", True)
    assert missed.steps == ("t2_delete_20", "t1_update_all")
    assert missed.evidence == ("t2's DELETE FROM test WHERE value = 20 at t2_delete_20 did not delete test[1]: "
                               "it saw 10, not t1's 20 at t1_update_all")
    rechecked = edge_on(report, "wr", "test[2]")
    assert (rechecked.source, rechecked.target, rechecked.inferred) == ("t1", "t2", True)
    assert rechecked.evidence == ("t2's DELETE FROM test WHERE value = 20 at t2_delete_20 did not delete test[2]: "
                                  "it re-checked the row and saw t1's 30, not 20")
    assert missed in report.analysis.anomalies[0].cycle


def test_g_single_write_1_at_read_committed_is_the_delete_seeing_the_newer_row(lab: Lab, catalogue: Catalogue) -> None:
    report = run_named(lab, catalogue, "hermitage-g-single-write-1", RC)
    (anomaly,) = report.analysis.anomalies
    assert anomaly.name == "G-single"
    saw = edge_on(report, "wr", "test[2]")
    assert (saw.source, saw.target, saw.steps) == ("t2", "t1", ("t2_update_2", "t1_delete_20"))
    assert saw.evidence == ("t1's DELETE FROM test WHERE value = 20 at t1_delete_20 did not delete test[2]: "
                            "it saw t2's 18, not 20")
    assert {(e.kind, e.source, e.target) for e in anomaly.cycle} == {("rw", "t1", "t2"), ("wr", "t2", "t1")}


LOCKING_PMP = """\
name: locking-pmp
title: PMP with a locking read - a SELECT ... FOR UPDATE by condition misses the row that matches after its wait
summary: The locking SELECT re-checks only the row it waited for, as a DELETE would.
setup: |
  CREATE TABLE test (id int PRIMARY KEY, value int);
  INSERT INTO test VALUES (1, 10), (2, 20);
sessions:
  t1: {}
  t2: {}
steps:
  - {name: t1_update_all, session: t1, sql: UPDATE test SET value = value + 10}
  - {name: t2_lock_20, session: t2, sql: SELECT * FROM test WHERE value = 20 FOR UPDATE}
  - {name: t1_commit, session: t1, sql: COMMIT}
  - {name: t2_read_20, session: t2, sql: SELECT * FROM test WHERE value = 20}
  - {name: t2_commit, session: t2, sql: COMMIT}
expect:
  ru, rc:
    blocked: [t2_lock_20]
    rows: {t2_lock_20: [], t2_read_20: [[1, 20]]}
  rr, ser:
    blocked: [t2_lock_20]
    errors: {t2_lock_20: "40001", t2_read_20: 25P02}
"""


@pytest.mark.parametrize("level", [RC, RR])
def test_a_locking_select_by_condition_saw_its_rows_as_a_delete_would(lab: Lab, tmp_path: Path, level: Level) -> None:
    path = tmp_path / "locking-pmp.yaml"
    path.write_text(LOCKING_PMP)
    report = run_cell(lab, load_scenario(path), level)
    rows = {e.step: e.rows for e in report.timeline.events if e.step == "t2_lock_20" and e.rows is not None}
    if level is RR:
        assert [e.step for e in report.timeline.events if e.outcome is Outcome.ERROR] == ["t2_lock_20", "t2_read_20"]
        assert report.analysis.anomalies == ()
        return
    assert rows == {"t2_lock_20": ()}
    assert [a.name for a in report.analysis.anomalies] == ["G-single"]
    assert edge_on(report, "rw", "test[1]").evidence == (
        "t2's SELECT ... FROM test WHERE value = 20 FOR UPDATE at t2_lock_20 did not lock test[1]: "
        "it saw 10, not t1's 20 at t1_update_all")
    assert edge_on(report, "wr", "test[2]").evidence == (
        "t2's SELECT ... FROM test WHERE value = 20 FOR UPDATE at t2_lock_20 did not lock test[2]: "
        "it re-checked the row and saw t1's 30, not 20")


BONUS = """\
name: bonus-for-the-rich
title: A bonus by condition misses the account opened meanwhile
summary: The UPDATE's snapshot predates the INSERT, whose writer read the row the UPDATE then wrote.
setup: |
  CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, bonus int NOT NULL);
  INSERT INTO accounts VALUES (1, 100, 0), (2, 50, 0);
sessions:
  payroll: {}
  branch: {}
steps:
  - {name: payroll_look, session: payroll, sql: SELECT balance FROM accounts WHERE id = 1}
  - {name: branch_check, session: branch, sql: SELECT bonus FROM accounts WHERE id = 1}
  - {name: branch_open, session: branch, sql: "INSERT INTO accounts VALUES (3, 200, 0)"}
  - {name: branch_commit, session: branch, sql: COMMIT}
  - {name: payroll_bonus, session: payroll, sql: UPDATE accounts SET bonus = 10 WHERE balance >= 100}
  - {name: payroll_commit, session: payroll, sql: COMMIT}
expect:
  ru, rc, rr: {}
  ser:
    errors: {payroll_bonus: "40001"}
"""


@pytest.mark.parametrize("level", [RC, RR, SER])
def test_an_update_that_misses_a_row_inserted_after_its_snapshot_is_a_predicate_anti_dependency(
    lab: Lab, tmp_path: Path, level: Level,
) -> None:
    path = tmp_path / "bonus-for-the-rich.yaml"
    path.write_text(BONUS)
    report = run_cell(lab, load_scenario(path), level)
    names = [a.name for a in report.analysis.anomalies]
    if level is RR:  # the UPDATE scanned with the transaction's snapshot: no account 3 yet
        assert names == ["G2"]
        missed = edge_on(report, "rw", "accounts[3]")
        assert (missed.source, missed.target) == ("payroll", "branch")
        assert missed.evidence == ("payroll's UPDATE accounts ... WHERE balance >= 100 at payroll_bonus did not update "
                                   "accounts[3]: it saw no row, not branch's (200, 0) at branch_open")
    else:  # READ COMMITTED: the statement's snapshot has account 3 and pays it; SERIALIZABLE refuses
        assert names == []
        refused = [e.step for e in report.timeline.events if e.outcome is Outcome.ERROR]
        assert refused == (["payroll_bonus"] if level is SER else [])


def test_a_step_that_adds_a_column_leaves_the_where_clauses_evaluable_and_says_what_it_cannot_see(
    lab: Lab, catalogue: Catalogue,
) -> None:
    """psycopg2-autocommit adds a column mid-run: the setup's rows, logged in the old shape,
    are typed by column name, so no clause fails; the UPDATE whose write the log lost (the
    capture keeps no row of the new shape) derives nothing and says why."""
    report = run_named(lab, catalogue, "psycopg2-autocommit", RC)
    gaps = report.analysis.history.gaps
    assert not [g for g in gaps if "could not be re-evaluated" in g], gaps
    steps = {e.seq: e.step for e in report.timeline.events}
    assert {steps[p.event_seq] for p in report.timeline.history.predicates} >= {"app_select", "app_deposit"}
    assert ("app_deposit's UPDATE chose 1 row(s) of accounts, 0 of them logged with their key: which versions its "
            "WHERE clause rejected is not derived") in gaps
