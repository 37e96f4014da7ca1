"""Scenario files are validated before anything runs: a mistake is one line naming the
file, the line and the problem. No database is needed for any of these tests.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from txnlab.errors import ScenarioError, UsageError
from txnlab.levels import Level
from txnlab.scenario import Catalogue, load_scenario

VALID = """\
name: tiny
title: A tiny scenario
summary: Two sessions read one row.
setup: CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10);
sessions:
  a: {}
  b: {autocommit: true, level: serializable}
steps:
  - {name: a_read, session: a, sql: SELECT v FROM t}
  - {session: b, sql: "UPDATE t SET v = ${a_read.v} + 1"}
  - {session: a, sql: COMMIT}
invariants:
  positive: SELECT bool_and(v > 0) FROM t
expect:
  all:
    rows: {a_read: [[10]]}
"""


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_for(tmp_path: Path, text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, text))
    return caught.value


def test_a_valid_file_becomes_a_model_with_defaults_filled_in(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, VALID))
    assert scenario.name == "tiny"
    assert [s.name for s in scenario.sessions] == ["a", "b"]
    assert scenario.session("b").autocommit and scenario.session("b").level is Level.SERIALIZABLE
    assert list(scenario.steps) == ["a_read", "b-1", "a-2"]  # unnamed steps get <session>-<n>
    assert scenario.default_permutation == ("a_read", "b-1", "a-2")
    assert scenario.steps["b-1"].references == [("a_read", "v")]
    assert set(scenario.expectations) == set(Level)  # `all` covers the four levels
    assert scenario.expectations[Level.READ_COMMITTED].rows == {"a_read": ((10,),)}


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("name: tiny", "name: Tiny Scenario"), 1, "name 'Tiny Scenario' must be lowercase"),
        (("title: A tiny scenario\n", ""), None, "title must be non-empty text"),
        (("  b: {autocommit: true, level: serializable}\n", ""), 5, "at least two sessions"),
        (("session: b, sql", "session: c, sql"), 10, "unknown session 'c'; sessions are: a, b"),
        (("{name: a_read, session: a, sql: SELECT v FROM t}", "{name: a_read, session: a, sqll: x}"), 9,
         "unknown key 'sqll' in a step (did you mean 'sql'?)"),
        (("level: serializable", "level: snapshot"), 7, "unknown isolation level 'snapshot'"),
        (("rows: {a_read: [[10]]}", "errors: {a_read: 4001}"), 16, "'4001' is not a SQLSTATE"),
        (("rows: {a_read: [[10]]}", "blocked: [nobody]"), 16, "unknown step 'nobody'"),
        (("${a_read.v}", "${later.v}"), 8, "'later' is not an earlier step"),
        (("expect:\n  all:", "expect:\n  rc:"), 14, "no expectation for read uncommitted, repeatable read, serializable"),
        (("  all:\n", "  all:\n    anomaly: true\n"), 15, "the scenario defines no 'anomaly:' rule"),
        (("sessions:", "sessions:\n  a: {}\n"), 8, "duplicate key 'a'"),
        (("steps:", "steps: ["), 9, "invalid YAML"),
        (("invariants:", "claim: {says: x, level: rc, true_if: [{step: a_read, rows: [[1]], blocked: true}], "
          "holds: false}\ninvariants:"), 12, "exactly one of 'rows:', 'blocked:' or 'error:'"),
        (("invariants:", "claim: {says: x, level: rc, true_if: [{anomaly: true}]}\ninvariants:"), 12,
         "a claim needs 'holds: true' or 'holds: false'"),
    ],
)
def test_a_malformed_file_is_one_error_naming_file_line_and_problem(
    tmp_path: Path, change: tuple[str, str], line: int | None, message: str
) -> None:
    old, new = change
    assert old in VALID
    error = error_for(tmp_path, VALID.replace(old, new, 1))
    assert message in str(error)
    assert str(error).startswith(str(tmp_path / "scenario.yaml"))
    if line is not None:
        assert error.line == line, str(error)
    assert "\n" not in str(error)


def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    assert "must be a mapping" in str(error_for(tmp_path, "- just\n- a list\n"))


def test_a_python_scenario_without_play_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "SCENARIO = {'name': 'x'}\n", "broken.py")
    with pytest.raises(ScenarioError, match="must define play"):
        load_scenario(path)


def test_a_python_scenario_with_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "SCENARIO = {\n  'name': 'x',,\n}\n", "broken.py")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.line == 2


def test_every_catalogue_scenario_is_valid_and_explained(catalogue: Catalogue) -> None:
    scenarios = catalogue.scenarios
    assert "atm-lost-update" in scenarios
    for scenario in scenarios.values():
        assert len(scenario.summary) > 80, f"{scenario.name}: the summary should explain the lesson"
        assert scenario.references, f"{scenario.name}: cite the documentation"
        assert set(scenario.expectations) == set(scenario.levels)


def test_the_catalogue_resolves_names_paths_and_suggests_close_names(catalogue: Catalogue, tmp_path: Path) -> None:
    assert catalogue.resolve("atm-lost-update").name == "atm-lost-update"
    assert catalogue.resolve(str(write(tmp_path, VALID))).name == "tiny"
    with pytest.raises(UsageError, match="did you mean atm-lost-update"):
        catalogue.resolve("atm-lost-updat")
    with pytest.raises(UsageError, match="no scenario file at"):
        catalogue.resolve(str(tmp_path / "missing.yaml"))
