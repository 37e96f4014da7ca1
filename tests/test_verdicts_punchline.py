"""Verdicts that say why, and the punchline on screen (issue 9, part 4).

"How" an anomaly was prevented comes from the steps its rule depends on, not from any
wait or error in the run; a matrix cell says what really happened to a run; after a
run every renderer shows the invariants and the scenario's `final:` rows; workshop mode
lets the room predict what a released step will do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenario_text import scenario_from_yaml
from terminal import run_on_terminal
from txnlab.checks import check
from txnlab.cli.catalogue import describe
from txnlab.errors import ScenarioError
from txnlab.levels import Level
from txnlab.render import json as json_render
from txnlab.render import markdown, text
from txnlab.render.html import render_report
from txnlab.render.report import RunReport
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue
from txnlab.workflow import run_cell

# The catalogue's non-repeatable read, with an unrelated wait after the reader's transaction
# (clerk waits for atm's table lock) or inside it, after both reads (statement_audit).
NON_REPEATABLE_READ_AND_A_WAIT = """\
name: nrr-and-a-wait
title: A non-repeatable read, and a wait that has nothing to do with it
summary: The reader's snapshot prevents the anomaly at REPEATABLE READ; a later wait does not.
setup: |
  CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
  CREATE TABLE audit (note text);
  INSERT INTO accounts VALUES (1, 100);
sessions: {statement: {}, atm: {}, clerk: {}}
steps:
  - {name: statement_read1, session: statement, sql: SELECT balance FROM accounts WHERE id = 1}
  - {name: atm_deposit, session: atm, sql: UPDATE accounts SET balance = balance + 50 WHERE id = 1}
  - {name: atm_commit, session: atm, sql: COMMIT}
  - {name: statement_read2, session: statement, sql: SELECT balance FROM accounts WHERE id = 1}
  - {name: atm_lock, session: atm, sql: LOCK TABLE audit IN EXCLUSIVE MODE}
  - {name: %(waiter)s, session: %(waiter_session)s, sql: "INSERT INTO audit VALUES ('read twice')"}
  - {name: atm_release, session: atm, sql: COMMIT}
  - {name: %(waiter_commit)s, session: %(waiter_session)s, sql: COMMIT}
  - {name: statement_end, session: %(end_session)s, sql: COMMIT}
anomaly:
  name: non-repeatable read
  observed_if:
    - {step: statement_read1, rows: [[100]]}
    - {step: statement_read2, rows: [[150]]}
expect:
  ru, rc: {blocked: [%(waiter)s], anomaly: true}
  rr, ser: {blocked: [%(waiter)s], anomaly: false}
"""


def _nrr(waiter_session: str) -> str:
    """The scenario with the wait in `waiter_session`: "clerk" (another session) or "statement"."""
    waiter = f"{waiter_session}_audit"
    end_session = "statement" if waiter_session == "clerk" else "clerk"
    return NON_REPEATABLE_READ_AND_A_WAIT % {
        "waiter": waiter, "waiter_session": waiter_session, "waiter_commit": f"{waiter_session}_commit",
        "end_session": end_session,
    }


@pytest.mark.parametrize("waiter_session", ["clerk", "statement"], ids=["another session", "the reader, later"])
def test_a_non_repeatable_read_at_repeatable_read_is_prevented_by_the_snapshot_whoever_waits_later(
    lab: Lab, waiter_session: str
) -> None:
    scenario = scenario_from_yaml(_nrr(waiter_session))
    verdict = check(scenario, lab.run(scenario, Level.REPEATABLE_READ))
    assert verdict.matches_expectation, verdict.mismatches
    assert (verdict.how, verdict.prevented_by, verdict.outcome) == ("snapshot", None, "prevented (snapshot)")


def test_a_non_repeatable_read_at_read_committed_still_happens_with_the_same_wait(lab: Lab) -> None:
    scenario = scenario_from_yaml(_nrr("clerk"))
    verdict = check(scenario, lab.run(scenario, Level.READ_COMMITTED))
    assert verdict.matches_expectation and (verdict.outcome, verdict.how) == ("anomaly", None)


# Hermitage cells whose "how" depends on which steps bear on the rule, with the step whose
# refusal is credited (None: no refusal). OTV at REPEATABLE READ: t2's 40001 is not t3's
# transaction, whose snapshot kept the anomaly out. G1c at SERIALIZABLE: t2's reads are the
# rule's, and its COMMIT was refused. PMP-write at REPEATABLE READ: t2_read_20 failed 25P02
# because t2_delete_20, earlier in its transaction, was refused.
HOW = [
    ("OTV", Level.READ_COMMITTED, "snapshot", None),
    ("OTV", Level.REPEATABLE_READ, "snapshot", None),
    ("G1c", Level.SERIALIZABLE, "aborted", "t2_commit"),
    ("PMP-write", Level.REPEATABLE_READ, "aborted", "t2_delete_20"),
    ("G0", Level.READ_COMMITTED, "blocked", None),
    ("G2", Level.SERIALIZABLE, "aborted", "t2_commit"),
]


@pytest.mark.parametrize(("anomaly", "level", "how", "refused"), [
    pytest.param(*case, id=f"{case[0]}[{case[1].value}]") for case in HOW
])
def test_hermitage_how_is_credited_to_the_steps_its_rule_depends_on(
    lab: Lab, catalogue: Catalogue, anomaly: str, level: Level, how: str, refused: str | None
) -> None:
    scenario = next(s for s in catalogue.with_tag("hermitage") if s.anomaly and s.anomaly.name == anomaly)
    timeline = lab.run(scenario, level)
    verdict = check(scenario, timeline)
    assert verdict.how == how
    refusal = next((e.error for e in timeline.events if e.step == refused and e.error), None)
    assert verdict.prevented_by == refusal and (refused is None or refusal is not None)


# -- matrix cells and their legend ---------------------------------------------------------

NEVER_RELEASED = """\
name: never-released
title: b waits for a row lock that a never gives up
summary: The run outlives the step timeout.
setup: CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
sessions: {a: {}, b: {}}
levels: [rc]
steps:
  - {name: a_lock, session: a, sql: SELECT * FROM t FOR UPDATE}
  - {name: b_lock, session: b, sql: SELECT * FROM t FOR UPDATE}
expect: {rc: {blocked: [b_lock]}}
"""

# At REPEATABLE READ b's UPDATE fails with 40001 once a commits; the file expects 40P01.
WRONG_SQLSTATE = """\
name: wrong-sqlstate
title: The expected failure, with another SQLSTATE
summary: Only the SQLSTATE differs.
setup: CREATE TABLE t (id int PRIMARY KEY, n int); INSERT INTO t VALUES (1, 0);
sessions: {a: {}, b: {}}
levels: [rc, rr]
steps:
  - {name: b_read, session: b, sql: SELECT n FROM t}
  - {name: a_write, session: a, sql: UPDATE t SET n = 1}
  - {name: b_write, session: b, sql: UPDATE t SET n = 2}
  - {name: a_commit, session: a, sql: COMMIT}
  - {name: b_commit, session: b, sql: COMMIT}
expect:
  rc: {blocked: [b_write]}
  rr: {blocked: [b_write], errors: {b_write: 40P01}}
"""


@pytest.fixture(scope="module")
def impatient_lab(scratch_dsn: str) -> Iterator[Lab]:
    """A lab whose step timeout (0.3 s) a never-released lock outlives quickly."""
    lab = Lab(scratch_dsn, step_timeout=0.3)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def matrix_reports(lab: Lab, impatient_lab: Lab) -> list[RunReport]:
    """A timed-out run, one as expected (rc) and one whose only difference is a SQLSTATE (rr)."""
    timed_out = run_cell(impatient_lab, scenario_from_yaml(NEVER_RELEASED), Level.READ_COMMITTED)
    wrong = scenario_from_yaml(WRONG_SQLSTATE)
    return [timed_out, *(run_cell(lab, wrong, level) for level in (Level.READ_COMMITTED, Level.REPEATABLE_READ))]


def test_a_timed_out_run_says_timed_out_in_the_matrix_not_unexpected(matrix_reports: list[RunReport]) -> None:
    out = text.render_matrix(matrix_reports, width=160)
    row = next(line for line in out.splitlines() if "never-released" in line)
    assert "timed out ⚠" in row and "unexpected" not in row and "✗" not in row
    assert "timed out ⚠: a step ran or waited longer than the step timeout" in out
    timed_out = matrix_reports[0]
    assert (timed_out.verdict.outcome, timed_out.verdict.anomaly_observed) == ("timed out", None)
    summary = text.render_summary(matrix_reports, width=160).splitlines()
    assert summary[2].split() == ["never-released", "read", "committed", "timed", "out", "NO"]
    assert text.render_timeline(timed_out, width=160).count(
        "read committed: timed out, so what PostgreSQL would have done is unknown"
    ) == 1


def test_a_run_that_differs_only_in_a_sqlstate_says_which_sqlstate(matrix_reports: list[RunReport]) -> None:
    verdict = matrix_reports[2].verdict
    assert verdict.sqlstate_changes == (("b_write", "40P01", "40001"),) and verdict.only_sqlstates_differ
    out = text.render_matrix(matrix_reports, width=160)
    row = next(line for line in out.splitlines() if "wrong-sqlstate" in line)
    assert "ran ✓" in row and "ran ✗ expected 40P01, got 40001" in row and "unexpected" not in row


def test_json_says_which_sqlstate_differs_as_the_matrix_does(matrix_reports: list[RunReport]) -> None:
    verdict = json.loads(json_render.render_matrix(matrix_reports))["verdicts"][2]
    assert verdict["sqlstate_changes"] == [{"step": "b_write", "expected": "40P01", "observed": "40001"}]
    assert json.loads(json_render.render_matrix(matrix_reports))["verdicts"][0]["sqlstate_changes"] == []


def _table_marks(table: str) -> set[str]:
    return {mark for mark in ("✓", "✗", "⚠") if mark in table}


def test_the_matrix_legend_explains_every_mark_it_uses_in_text_and_markdown(matrix_reports: list[RunReport]) -> None:
    out = text.render_matrix(matrix_reports, width=160)
    table, legend = out.split("┘\n", 1)
    assert _table_marks(table) == {"✓", "✗", "⚠"}
    assert "✓: PostgreSQL did what the scenario says" in legend
    assert "✗ expected 40P01, got 40001: the steps expected to fail did" in legend
    assert "timed out ⚠: " in legend and "ran: the scenario has no anomaly rule." in legend
    markdown_out = markdown.render_matrix(matrix_reports)
    table, legend = markdown_out.split("\n\n")[0], markdown_out.split("\n\n")[1]
    assert _table_marks(table) == {"✓", "✗", "⚠"}  # before: no ✓, and "(**unexpected**)" for every difference
    assert "ran ✗ **expected 40P01, got 40001**" in table and "timed out ⚠" in table
    assert "- ✓: PostgreSQL did what" in legend and "- ✗ expected 40P01, got 40001: " in legend
    assert "- timed out ⚠: " in legend
    page = render_report(matrix_reports, "marks")  # the handout's table of runs has the same cells and legend
    assert ">timed out ⚠</a></td>" in page and ">ran ✗ expected 40P01, got 40001</a></td>" in page
    assert '<ul class="marks"><li>✓: PostgreSQL did what' in page and "<li>timed out ⚠: " in page


def test_the_hermitage_table_legend_explains_its_words_and_marks(matrix_reports: list[RunReport]) -> None:
    out = text.render_anomaly_table(matrix_reports, width=160)
    assert "timed out ⚠" in out and "ran ✗ expected 40P01, got 40001" not in out  # Hermitage's words, not "ran"
    assert "possible: the anomaly happened; prevented: it did not" in out
    assert "✗ expected 40P01, got 40001: " in out and "timed out ⚠: " in out


# -- the punchline: invariants and `final:` after the run -----------------------------------

# The blog's ATM at READ COMMITTED, with the final state it leaves: balance 70, ledger 120.
LOST_DEPOSIT = """\
name: lost-deposit
title: The ATM loses a deposit
summary: The punchline is the final state.
setup: |
  CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
  CREATE TABLE ledger (amount int NOT NULL);
  INSERT INTO accounts VALUES (1, 100);
sessions: {atm1: {}, atm2: {}}
levels: [rc]
steps:
  - {name: atm1_read, session: atm1, sql: SELECT balance FROM accounts WHERE id = 1}
  - {name: atm2_read, session: atm2, sql: SELECT balance FROM accounts WHERE id = 1}
  - {name: atm1_write, session: atm1, sql: "UPDATE accounts SET balance = ${atm1_read.balance} + 50 WHERE id = 1"}
  - {name: atm1_log, session: atm1, sql: INSERT INTO ledger VALUES (50)}
  - {name: atm2_write, session: atm2, sql: "UPDATE accounts SET balance = ${atm2_read.balance} - 30 WHERE id = 1"}
  - {name: atm1_commit, session: atm1, sql: COMMIT}
  - {name: atm2_log, session: atm2, sql: INSERT INTO ledger VALUES (-30)}
  - {name: atm2_commit, session: atm2, sql: COMMIT}
invariants:
  balance_matches_ledger: SELECT balance = 100 + (SELECT sum(amount) FROM ledger) FROM accounts
  someone_has_money: SELECT balance > 0 FROM accounts
final:
  - SELECT balance FROM accounts WHERE id = 1
  - SELECT 100 + sum(amount) AS the_ledger_says FROM ledger
expect:
  rc: {blocked: [atm2_write], invariants: {balance_matches_ledger: false}}
"""


@pytest.fixture(scope="module")
def lost_deposit(lab: Lab) -> RunReport:
    report = run_cell(lab, scenario_from_yaml(LOST_DEPOSIT), Level.READ_COMMITTED)
    assert report.verdict.matches_expectation, report.verdict.mismatches
    return report


def test_final_runs_after_the_steps_and_gives_results_like_a_steps(lost_deposit: RunReport) -> None:
    balance, ledger = lost_deposit.timeline.final
    assert (balance.sql, balance.columns, balance.rows) == ("SELECT balance FROM accounts WHERE id = 1", ("balance",), (("70",),))
    assert balance.column_types == ("integer",)
    assert (ledger.columns, ledger.rows, ledger.step) == (("the_ledger_says",), (("120",),), "final.2")


def test_text_shows_the_final_rows_and_each_invariant_with_its_sql(lost_deposit: RunReport) -> None:
    out = text.render_timeline(lost_deposit, width=120)
    final = out.split("final state (committed, after the run):\n", 1)[1]
    assert final.startswith(
        "  SELECT balance FROM accounts WHERE id = 1\n  → balance = 70\n"
        "  SELECT 100 + sum(amount) AS the_ledger_says FROM ledger\n  → the_ledger_says = 120\n"
        "  invariant balance_matches_ledger: broken\n"
        "    SELECT balance = 100 + (SELECT sum(amount) FROM ledger) FROM accounts\n"
        "  invariant someone_has_money: holds\n    SELECT balance > 0 FROM accounts\n"
        "read committed: as expected"
    )


def test_markdown_shows_the_final_rows_and_each_invariant_with_its_sql(lost_deposit: RunReport) -> None:
    out = markdown.render_runs([lost_deposit])
    assert "- `SELECT balance FROM accounts WHERE id = 1` → balance = 70\n" in out
    assert "- `SELECT 100 + sum(amount) AS the_ledger_says FROM ledger` → the\\_ledger\\_says = 120\n" in out
    assert "- invariant balance\\_matches\\_ledger **broken**: " \
           "`SELECT balance = 100 + (SELECT sum(amount) FROM ledger) FROM accounts`\n" in out
    assert "- invariant someone\\_has\\_money **holds**: `SELECT balance > 0 FROM accounts`" in out


def test_html_shows_the_final_rows_and_each_invariant_with_its_sql(lost_deposit: RunReport) -> None:
    page = render_report([lost_deposit], "lost deposit")
    final = page.split('<div class="final-state">', 1)[1].split("</div>", 1)[0]
    assert '<tr class="final"><td><pre class="sql">SELECT balance FROM accounts WHERE id = 1</pre></td>' \
           '<td class="result">→ balance = 70</td></tr>' in final
    assert "→ the_ledger_says = 120" in final
    assert '<tr class="invariant bad"><td>invariant <code>balance_matches_ledger</code><pre class="sql">' \
           "SELECT balance = 100 + (SELECT sum(amount) FROM ledger) FROM accounts</pre></td>" \
           '<td class="result">broken</td></tr>' in final
    assert '<tr class="invariant holds"><td>invariant <code>someone_has_money</code>' in final
    assert page.index('class="final-state"') < page.index('class="verdict')


def test_json_carries_the_final_rows_and_the_invariants_sql_as_new_keys(lost_deposit: RunReport) -> None:
    (run,) = json.loads(json_render.render_runs([lost_deposit]))["runs"]
    assert [(f["sql"], f["columns"], f["rows"]) for f in run["final"]] == [
        ("SELECT balance FROM accounts WHERE id = 1", ["balance"], [[70]]),
        ("SELECT 100 + sum(amount) AS the_ledger_says FROM ledger", ["the_ledger_says"], [[120]]),
    ]
    assert run["invariant_sql"]["someone_has_money"] == "SELECT balance > 0 FROM accounts"
    assert run["invariants"] == {"balance_matches_ledger": False, "someone_has_money": True}  # unchanged


def test_a_failing_final_query_is_the_scenarios_fault_with_its_line(lab: Lab) -> None:
    scenario = scenario_from_yaml(LOST_DEPOSIT.replace("FROM ledger\nexpect:", "FROM ledgers\nexpect:"))
    with pytest.raises(ScenarioError) as failed:
        lab.run(scenario, Level.READ_COMMITTED)
    assert str(failed.value) == 'inline.yaml:24: final SQL failed: 42P01 relation "ledgers" does not exist'


def _terminal_env(server_dsn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS",)}
    return {**env, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1"}


def test_workshop_mode_shows_the_final_rows_and_invariants_after_the_run(server_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "lost-deposit.yaml"
    path.write_text(LOST_DEPOSIT)
    code, shown = run_on_terminal(["run", str(path), "--step"], _terminal_env(server_dsn), columns=100,
                                  answer={"Press Enter to run it": "\n"})
    assert code == 0, shown
    assert "→ balance = 70\n" in shown and "→ the_ledger_says = 120\n" in shown
    assert "invariant balance_matches_ledger: broken\n" in shown and "invariant someone_has_money: holds\n" in shown


# -- workshop mode: predicting what a released step does ------------------------------------


def test_workshop_lets_the_room_predict_what_a_released_step_does_before_it_is_shown(
    server_dsn: str, tmp_path: Path
) -> None:
    """atm2_write waits for atm1; atm1's COMMIT releases it. At READ COMMITTED it completes."""
    path = tmp_path / "lost-deposit.yaml"
    path.write_text(LOST_DEPOSIT)
    code, shown = run_on_terminal(["run", str(path), "--step", "--predict"], _terminal_env(server_dsn), columns=100,
                                  answer={"(o, b, f): ": "o\n", "(o, f): ": "f\n"})
    assert code == 0, shown
    commit = shown.split("── step 6 of 8 · atm1 ")[1].split("── step 7")[0]
    asked = commit.index("atm2_write (atm2) was waiting for atm1 and goes on now.\nWill it end (o)k or (f)ail? (o, f): f")
    revealed = commit.index("atm2: ↳ completed after the wait: 1 row affected")
    assert commit.index("atm1: → ok") < asked < revealed  # asked after the COMMIT, before the UPDATE's end
    assert "The room said it fails; it ends ok: wrong." in commit[revealed:]
    assert "The room got 7 of 9 predictions right at read committed." in shown  # 8 steps and the released one


def test_show_lists_the_final_queries_under_the_invariants() -> None:
    shown = describe(scenario_from_yaml(LOST_DEPOSIT), width=100)
    final = shown.split("Final state (shown after the run):\n", 1)[1]
    assert final.startswith("  SELECT balance FROM accounts WHERE id = 1\n  SELECT 100 + sum(amount) AS the_ledger_says")
    assert shown.index("Invariants (checked on the final state):") < shown.index("Final state (shown after the run):")
