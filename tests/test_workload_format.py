"""The `workload:` section of a scenario: validated before anything runs, every mistake one
line naming the file and line, its SQL's lines remembered. No database is needed here."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from txnlab.errors import ScenarioError
from txnlab.scenario import Catalogue, load_scenario
from txnlab.scenario.workload import transaction_function

LESSON = """\
name: tiny-load
title: A tiny scenario with a load
summary: Two sessions add to one counter.
setup: CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL); INSERT INTO t VALUES (1, 0);
sessions:
  a: {}
  b: {}
steps:
  - {name: a_add, session: a, sql: UPDATE t SET v = v + 1}
  - {name: a_commit, session: a, sql: COMMIT}
invariants:
  positive: SELECT bool_and(v >= 0) FROM t
expect:
  all: {}
"""

WORKLOAD = """\
workload:
  summary: Every client adds one.
  setup:
    - CREATE TABLE adds (n int)
    - INSERT INTO adds VALUES (0)
  script: |
    BEGIN;
    UPDATE t SET v = v + 1;
    COMMIT;
  measures:
    total: SELECT v FROM t
"""


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_for(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return caught.value


def test_a_yaml_workload_becomes_a_model_whose_invariants_default_to_the_scenarios(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, LESSON + WORKLOAD))
    workload = scenario.workload
    assert workload is not None
    assert workload.script == "BEGIN;\nUPDATE t SET v = v + 1;\nCOMMIT;" and workload.function is None
    assert workload.setup == ("CREATE TABLE adds (n int)", "INSERT INTO adds VALUES (0)")
    assert dict(workload.measures) == {"total": "SELECT v FROM t"}
    assert dict(workload.invariants) == {"positive": "SELECT bool_and(v >= 0) FROM t"}
    assert workload.summary == "Every client adds one."


def test_a_scenario_without_a_workload_has_none(tmp_path: Path) -> None:
    assert load_scenario(write(tmp_path, LESSON)).workload is None


def test_the_workloads_sql_is_located_by_line_including_a_defaulted_invariant(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, LESSON + WORKLOAD))
    first = LESSON.count("\n")  # the workload starts on the next line
    assert {key: line for key, line in scenario.lines.items() if key.startswith("workload.")} == {
        "workload.setup.0": first + 4,
        "workload.setup.1": first + 5,
        "workload.script": first + 7,
        "workload.measure.total": first + 11,
        "workload.invariant.positive": scenario.lines["invariant.positive"],
    }
    assert scenario.where("workload.script", 1).endswith(f"scenario.yaml:{first + 8}")  # the UPDATE


def test_the_workloads_own_invariants_replace_the_scenarios(tmp_path: Path) -> None:
    text = LESSON + WORKLOAD + "  invariants:\n    counted: SELECT v >= 0 FROM t\n"
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.workload is not None and dict(scenario.workload.invariants) == {"counted": "SELECT v >= 0 FROM t"}
    assert scenario.lines["workload.invariant.counted"] == text.count("\n")
    assert "workload.invariant.positive" not in scenario.lines


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda w: w.replace("  script: |", "  function: add_one\n  script: |"), "it has both"),
        (lambda w: w.split("  script: |")[0] + "  measures: {total: SELECT 1}\n", "it has neither"),
    ],
)
def test_a_workload_needs_exactly_one_of_script_and_function(tmp_path: Path, edit, said: str) -> None:  # type: ignore[no-untyped-def]
    error = error_for(write(tmp_path, LESSON + edit(WORKLOAD)))
    assert error.line == LESSON.count("\n") + 1
    assert "'workload:' needs exactly one of 'script:' (SQL) and 'function:' (Python)" in str(error) and said in str(error)


def test_a_yaml_workload_cannot_name_a_python_function(tmp_path: Path) -> None:
    text = LESSON + "workload:\n  function: add_one\n"
    error = error_for(write(tmp_path, text))
    assert error.line == text.count("\n")
    assert "'workload: function:' is for Python scenarios" in str(error)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("  measure:\n    total: SELECT 1\n", "measure"),  # a typo: `measure` for `measures`
        ("  measures:\n    total: 42\n", "workload.measures.total"),  # SQL must be text
        ("  measures:\n    'two words': SELECT 1\n", "two words"),  # a name must be an identifier
    ],
)
def test_a_malformed_workload_is_one_line_at_its_line(tmp_path: Path, text: str, problem: str) -> None:
    document = LESSON + WORKLOAD.split("  measures:")[0] + text
    error = error_for(write(tmp_path, document))
    assert error.line == document.count("\n") - text.count("\n") + (1 if problem == "measure" else 2)
    assert problem in str(error)


PYTHON = '''\
import random

SCENARIO = {
    "name": "python-load",
    "title": "A Python scenario with a load",
    "summary": "One session adds to a counter.",
    "setup": "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL); INSERT INTO t VALUES (1, 0)",
    "sessions": {"a": {}, "b": {}},
    "steps": [{"name": "a_add", "session": "a", "sql": "UPDATE t SET v = v + 1"}],
    "expect": {"all": {}},
    "workload": {
        "function": "add_one",
        "measures": {"total": "SELECT v FROM t"},
    },
}

NOT_A_FUNCTION = 42


def add_one(conn, rng: random.Random) -> None:
    with conn.cursor() as cur:
        cur.execute("UPDATE t SET v = v + %s", (rng.randint(1, 1),))
    conn.commit()


def add_nothing(conn) -> None:
    conn.commit()


def play(run) -> None:
    run.step("a_add")
'''


def test_a_python_workload_names_a_function_of_its_module(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, PYTHON, "python_load.py"))
    assert scenario.workload is not None and scenario.workload.function == "add_one"
    assert scenario.workload.script is None
    function = transaction_function(scenario)
    assert function.__name__ == "add_one" and function.__code__.co_filename == str(tmp_path / "python_load.py")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("add_two", "names 'add_two', which the module does not define"),
        ("NOT_A_FUNCTION", "names 'NOT_A_FUNCTION', which is not a function"),
        ("add_nothing", "'add_nothing' must accept two arguments: (conn, rng)"),
    ],
)
def test_a_python_workload_function_that_is_missing_or_wrong_is_one_line_at_its_line(
    tmp_path: Path, name: str, problem: str
) -> None:
    text = PYTHON.replace('"function": "add_one"', f'"function": "{name}"')
    error = error_for(write(tmp_path, text, "python_load.py"))
    assert error.line == 12  # the line of "function": ... in SCENARIO
    assert problem in str(error) and str(error).startswith(f"{tmp_path / 'python_load.py'}:12:")


def test_transaction_function_refuses_a_scenario_without_a_python_workload(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, LESSON + WORKLOAD))
    with pytest.raises(ValueError, match="has no Python workload function"):
        transaction_function(scenario)


# What the catalogue's workloads count (issue 13): the name of each measure the docs and the
# bench report rely on. That the counts are right is shown on a live server (test_workload_counts.py).
CATALOGUE_MEASURES = {
    "atm-lost-update": {"lost_updates", "money_vanished"},
    "atm-atomic-update": {"lost_updates", "money_vanished"},
    "atm-select-for-update": {"lost_updates", "money_vanished"},
    "atm-retry-on-serialization-failure": {"lost_updates", "money_vanished"},
    "write-skew-doctors": {"nobody_on_call", "went_off_call"},
    "skip-locked-job-queue": {"jobs_done_twice", "jobs_done"},
    "job-queue-for-update": {"jobs_done_twice", "jobs_done"},
    "bank-transfer": {"money_created_or_destroyed", "transfers"},
}


def test_the_catalogue_workloads_count_what_the_docs_say(catalogue: Catalogue) -> None:
    loaded = {name: s.workload for name, s in catalogue.scenarios.items() if s.workload is not None}
    assert {name: set(w.measures) for name, w in loaded.items()} == CATALOGUE_MEASURES
    assert loaded["atm-retry-on-serialization-failure"].function == "update_balance"
    assert all(w.script is not None for name, w in loaded.items() if name != "atm-retry-on-serialization-failure")
    assert all(w.summary and w.invariants for w in loaded.values())


def test_a_script_pgbench_would_refuse_fails_when_the_file_loads_at_its_own_line(tmp_path: Path) -> None:
    bad = WORKLOAD.replace("  script: |\n", "  script: |\n\n").replace("v = v + 1;\n", "v = v + :step;\n")
    path = write(tmp_path, LESSON + bad)
    error = error_for(path)
    failing = path.read_text().splitlines()[error.line - 1]
    assert failing.strip() == "UPDATE t SET v = v + :step;"  # a blank first line does not shift it
    assert error.problem.startswith("workload script: unknown variable :step")


def test_a_script_of_two_transactions_fails_when_the_file_loads(tmp_path: Path) -> None:
    bad = WORKLOAD.replace("    COMMIT;\n", "    COMMIT;\n    BEGIN;\n    COMMIT;\n", 1)
    assert "workload script:" in str(error_for(write(tmp_path, LESSON + bad)))
