"""`--permutations all|ORDER` on run, report and matrix (issue 10): a YAML scenario runs in
every interleaving of its sessions' steps, in isolationtester's order, or in orders written
on the command line. Only the scenario's own order is judged by its expectations; every
other run is shown as it happened, says it has no verdict, and never makes exit 1.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest


# Two sessions updating the same row: in the scenario's own order nobody waits; when b
# updates while a's transaction holds the row, b waits for a's COMMIT.
TWO_UPDATES = """\
name: two-updates
title: Two sessions update the same row
summary: Used by the permutation tests.
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int);
  INSERT INTO t VALUES (1, 0);
sessions: {a: {}, b: {}}
steps:
  - {name: a1, session: a, sql: UPDATE t SET v = v + 1 WHERE id = 1}
  - {name: a2, session: a, sql: COMMIT}
  - {name: b1, session: b, sql: UPDATE t SET v = v + 10 WHERE id = 1}
  - {name: b2, session: b, sql: COMMIT}
invariants:
  both_counted: SELECT v = 11 FROM t WHERE id = 1
expect: {all: {invariants: {both_counted: true}}}
"""

# isolationtester's order for piles [a1 a2] and [b1 b2], written out by hand: depth first,
# always taking the next step from the first session that still has one.
ALL_ORDERS = [
    ["a1", "a2", "b1", "b2"],
    ["a1", "b1", "a2", "b2"],
    ["a1", "b1", "b2", "a2"],
    ["b1", "a1", "a2", "b2"],
    ["b1", "a1", "b2", "a2"],
    ["b1", "b2", "a1", "a2"],
]
OWN_ORDER = ["a1", "a2", "b1", "b2"]


pytestmark = pytest.mark.usefixtures("plain_output")  # conftest: no colour, 120 columns
TEXT_COLUMNS = 120


@pytest.fixture
def two_updates(tmp_path: Path) -> str:
    path = tmp_path / "two-updates.yaml"
    path.write_text(TWO_UPDATES)
    return str(path)


def test_permutations_all_runs_every_interleaving_in_isolationtesters_order(cli, two_updates) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", two_updates, "--level", "rc", "--permutations", "all", "--step-timeout", "0.5",
                         "--format", "json")
    runs = json.loads(out)["runs"]
    assert [run["permutation"] for run in runs] == ALL_ORDERS
    assert [(run["permutation_number"], run["permutation_count"]) for run in runs] == [(n, 6) for n in range(1, 7)]
    assert code == 0, err


def test_only_the_scenarios_own_order_is_judged(cli, two_updates) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", two_updates, "--level", "rc", "--permutations", "all", "--step-timeout", "0.5",
                         "--format", "json")
    verdicts = {tuple(run["permutation"]): run["verdict"] for run in json.loads(out)["runs"]}
    assert verdicts[tuple(OWN_ORDER)]["matches_expectation"] is True
    assert verdicts[tuple(OWN_ORDER)]["unjudged"] is None
    others = [v for order, v in verdicts.items() if list(order) != OWN_ORDER]
    assert len(others) == 5
    assert all(v["matches_expectation"] is None for v in others)
    assert all(v["unjudged"] == "its expectations are for its own order: a1 a2 b1 b2" for v in others)
    assert code == 0, err


def test_a_run_in_another_order_shows_what_happened_without_a_verdict(cli, two_updates) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", two_updates, "--level", "rc", "--permutations", "b1 a1 b2 a2")
    assert code == 0, err
    assert "two-updates at READ COMMITTED" in out
    assert "permutation 1 of 1: b1 a1 b2 a2" in out
    assert "◷ waits for b (row lock" in out  # a1 waits for b's uncommitted update
    assert "no verdict: its expectations are for its own order: a1 a2 b1 b2" in out
    assert "as expected" not in out and "DIFFERS" not in out


def test_a_step_that_needs_a_value_from_a_later_step_is_not_sent(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ref.yaml"
    path.write_text(textwrap.dedent("""\
        name: ref
        title: b uses what a read
        summary: A value read by one session, sent by another.
        sessions: {a: {}, b: {}}
        steps:
          - {name: a1, session: a, sql: SELECT 5 AS v}
          - {name: b1, session: b, sql: "SELECT ${a1.v} + 1 AS w"}
        expect: {all: {}}
    """))
    code, out, err = cli("run", str(path), "--level", "rc", "--permutations", "b1 a1", "--permutations", "a1 b1",
                         "--format", "json")
    first, second = json.loads(out)["runs"]
    b1 = next(e for e in first["events"] if e["step"] == "b1")
    assert (b1["outcome"], b1["error"]["message"]) == ("skipped", "${a1.v}: step a1 has no result yet")
    assert next(e for e in second["events"] if e["step"] == "b1")["rows"] == [[6]]
    assert code == 0, err


def test_an_order_that_cannot_finish_times_out_without_exit_1(cli, two_updates) -> None:  # type: ignore[no-untyped-def]
    # b1 waits for a's row lock, then b must commit before a ever does: only the step timeout ends it.
    code, out, err = cli("run", two_updates, "--level", "rc", "--permutations", "a1 b1 b2 a2",
                         "--step-timeout", "0.3", "--format", "json")
    (run,) = json.loads(out)["runs"]
    assert run["ended_early"] is not None
    assert run["verdict"]["outcome"] == "timed out"
    assert run["verdict"]["matches_expectation"] is None
    assert code == 0, err


def test_without_the_option_the_run_is_unchanged(cli, two_updates) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", two_updates, "--level", "rc", "--format", "json")
    (run,) = json.loads(out)["runs"]
    assert run["permutation"] == OWN_ORDER
    assert (run["permutation_number"], run["permutation_count"]) == (None, None)
    assert run["verdict"]["matches_expectation"] is True and run["verdict"]["unjudged"] is None
    code_text, text_out, _ = cli("run", two_updates, "--level", "rc")
    assert "permutation" not in text_out and "read committed: as expected" in text_out
    assert code == code_text == 0, err


def test_a_judged_run_that_differs_still_exits_1(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(TWO_UPDATES.replace("both_counted: true", "both_counted: false"))
    code, out, _ = cli("run", str(wrong), "--level", "rc", "--permutations", "a1 a2 b1 b2",
                       "--permutations", "b1 b2 a1 a2")
    assert "DIFFERS from the expectation" in out  # the own order, judged
    assert "no verdict: its expectations are for its own order" in out  # the other, not judged
    assert code == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--permutations", "a1 x9"], "--permutations: two-updates has no step 'x9' (its steps: a1, a2, b1, b2)"),
        (["--permutations", "a2 a1 b1 b2"],
         "--permutations 'a2 a1 b1 b2': step a2 comes too early; session a runs its steps in their written order (a1 a2)"),
        (["--permutations", "a1 a1"], "--permutations 'a1 a1': step a1 is named twice; a step runs once per run"),
        (["--permutations", "all", "--permutations", "a1"],
         "--permutations all runs every interleaving; it cannot be combined with written orders"),
        (["--permutations", "all", "--max-permutations", "5"],
         "--permutations all: two-updates's 4 steps in 2 sessions have 6 interleavings, more than "
         "--max-permutations 5; raise it to run them all"),
        (["--permutations", "'a1"], "--permutations \"'a1\": No closing quotation"),
        (["--permutations", "all", "--repeat", "2"], "--repeat follows one order of steps; it cannot run --permutations"),
    ],
)
def test_a_permutation_that_cannot_run_is_one_line_and_exit_2(cli, two_updates, arguments, message) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", two_updates, "--level", "rc", *arguments)
    assert (code, out, err) == (2, "", f"txnlab: error: {message}\n")


def test_a_python_scenario_refuses_permutations(cli) -> None:  # type: ignore[no-untyped-def]
    path = Path(__file__).resolve().parents[1] / "scenarios" / "atm-retry-on-serialization-failure.py"
    code, out, err = cli("run", str(path), "--permutations", "all")
    assert code == 2 and out == ""
    assert err.startswith("txnlab: error: --permutations: atm-retry-on-serialization-failure is a Python scenario")
    assert err.count("\n") == 1


def test_matrix_shows_each_permutation_as_a_row(cli, two_updates) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("matrix", two_updates, "--level", "rc,rr", "--permutations", "a1 a2 b1 b2",
                         "--permutations", "b1 a1 b2 a2")
    assert code == 0, err
    own = next(line for line in out.splitlines() if "#1: a1 a2 b1 b2" in line)
    other = next(line for line in out.splitlines() if "#2: b1 a1 b2 a2" in line)
    assert own.count("ran ✓") == 2
    assert other.count("waits: a1") == 2 and "✓" not in other and "✗" not in other
    assert "no mark: no expectation applies to that run" in out
    code, out, err = cli("matrix", two_updates, "--level", "rc", "--permutations", "b1 a1 b2 a2",
                         "--format", "json")
    (verdict,) = json.loads(out)["verdicts"]
    assert verdict["permutation"] == ["b1", "a1", "b2", "a2"]
    assert (verdict["permutation_number"], verdict["permutation_count"]) == (1, 1)
    assert verdict["matches_expectation"] is None and verdict["unjudged"].startswith("its expectations are for")
    assert code == 0, err


def test_report_has_a_linked_run_for_every_permutation(cli, two_updates, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "report.html"
    code, out, err = cli("report", two_updates, "--level", "rc", "--permutations", "all", "--step-timeout", "0.5",
                         "-o", str(page))
    assert code == 0, err
    html = page.read_text()
    ids = re.findall(r'<article class="run" id="([^"]+)"', html)
    assert len(ids) == len(set(ids)) == 6
    assert all(f'href="#{run_id}"' in html for run_id in ids)  # the contents table is the index
    assert html.count('<figure class="timeline">') == 6
    for number, order in enumerate(ALL_ORDERS, 1):
        assert f"permutation {number} of 6: {' '.join(order)}" in html
    assert html.count('class="verdict ok"') == 1  # the own order's
    assert html.count('class="verdict unjudged"') == 5
    assert "against an expectation, it counts as unexpected" in html  # the legend explains a timed-out order
    markdown = tmp_path / "report.md"
    code, _, err = cli("report", two_updates, "--level", "rc", "--permutations", "b1 a1 b2 a2", "-o", str(markdown))
    assert code == 0, err
    text = markdown.read_text()
    assert "Permutation 1 of 1: b1 a1 b2 a2." in text
    assert "**no verdict: its expectations are for its own order: a1 a2 b1 b2**" in text


def test_show_says_how_many_interleavings_all_would_run(cli, two_updates) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("show", two_updates)
    assert code == 0
    flat = " ".join(out.split())
    assert "--permutations all runs every one of the 6 interleavings" in flat
    assert "Only the order above is checked against the expectations." in flat
