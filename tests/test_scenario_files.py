"""Scenario files are validated before anything runs: a mistake is one line naming the
file, the line and the problem. No database is needed for any of these tests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from txnlab.errors import ScenarioError, UsageError
from txnlab.levels import Level
from txnlab.scenario import Catalogue, load_scenario
from txnlab.scenario.schema import json_schema

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


# --- The declared format: the published JSON Schema and the documentation agree with it.

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_published_json_schema_is_generated_from_the_models() -> None:
    published = (DOCS / "scenario.schema.json").read_text()
    assert published == json_schema(), (
        "docs/scenario.schema.json is stale; regenerate it with: python -c "
        "\"from txnlab.scenario.schema import json_schema; print(json_schema(), end='')\" > docs/scenario.schema.json"
    )


def _documented_keys(schema: dict[str, Any], node: dict[str, Any], value: Any, found: set[tuple[str, str]],
                     owner: str) -> None:
    """Walk an example document along the schema; record (definition, key) for each key."""
    if "$ref" in node:
        owner = node["$ref"].rsplit("/", 1)[-1]
        node = schema["$defs"][owner]
    for variant in [*node.get("anyOf", []), *node.get("oneOf", [])]:
        _documented_keys(schema, variant, value, found, owner)
    if isinstance(value, dict) and "properties" in node:
        for key, item in value.items():
            found.add((owner, key))
            if key in node["properties"]:
                _documented_keys(schema, node["properties"][key], item, found, owner)
    elif isinstance(value, dict):  # a mapping of names (sessions, expect, errors...) to values
        shapes = [*node.get("patternProperties", {}).values(), node.get("additionalProperties")]
        for shape in (s for s in shapes if isinstance(s, dict)):
            for item in value.values():
                _documented_keys(schema, shape, item, found, owner)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            _documented_keys(schema, node["items"], item, found, owner)


def test_every_key_of_the_documented_example_is_in_the_schema_and_the_other_way_round() -> None:
    schema = json.loads(json_schema())
    declared = {("ScenarioDocument", key) for key in schema["properties"]} | {
        (name, key) for name, definition in schema["$defs"].items() for key in definition["properties"]
    }
    text = (DOCS / "scenario-format.md").read_text()
    examples = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    documented: set[tuple[str, str]] = set()
    for example in examples:
        if isinstance(example, dict):
            _documented_keys(schema, schema, example, documented, "ScenarioDocument")
    # An accepted alternative has the keys of an expectation: documented once, for the expectation.
    inherited = {("AlternativeDocument", key) for name, key in declared if name == "ExpectationDocument"}
    assert documented - declared == set(), "keys in docs/scenario-format.md that the schema does not know"
    assert declared - documented - inherited == set(), "keys of the schema missing from docs/scenario-format.md's examples"


def test_the_schema_knows_the_catalogues_keys_and_rejects_what_txnlab_rejects(tmp_path: Path) -> None:
    """The published schema says `"true"` is not a flag, as the loader does."""
    schema = json.loads(json_schema())
    session = schema["$defs"]["SessionDocument"]["properties"]["autocommit"]
    assert {"type": "boolean"} in session["anyOf"]
    error = error_for(tmp_path, VALID.replace("autocommit: true", "autocommit: 'true'"))
    assert error.line == 7 and "sessions.b.autocommit must be true or false, not 'true'" in str(error)


def test_a_scenario_remembers_where_each_piece_of_sql_starts(tmp_path: Path) -> None:
    text = VALID.replace("sessions:\n  a: {}", "sessions:\n  a:\n    setup: [SET x = 1, SET y = 2]")
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.lines == {
        "setup.0": 4, "session.a.setup.0": 7, "session.a.setup.1": 7,
        "step.a_read": 10, "step.b-1": 11, "step.a-2": 12, "invariant.positive": 14,
    }


# --- Hostile files (issue 8, item 11): bounded work, one line, the line of the problem.

# The billion laughs: each list holds the previous one nine times; a few hundred bytes.
ALIAS_BOMB = "tags:\n" + "\n".join(
    ["  - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"  - &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, 10)]
)


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    started = time.perf_counter()
    text = ALIAS_BOMB + "\n" + VALID.replace("autocommit: true", "autocommit: *l9")
    error = error_for(tmp_path, text)  # before: the message quoted the value, 9**10 items
    assert time.perf_counter() - started < 1.0
    assert "more than 50000 values once its aliases (*name) are expanded" in str(error)


def test_aliases_within_the_limits_still_work(tmp_path: Path) -> None:
    text = VALID.replace("title: A tiny scenario", "title: &t A tiny scenario")
    scenario = load_scenario(write(tmp_path, text.replace("summary: Two sessions read one row.", "summary: *t")))
    assert scenario.summary == "A tiny scenario"


@pytest.mark.parametrize("depth", [40, 5000, 100_000])
def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    error = error_for(tmp_path, VALID + "permutations: " + "[" * depth + "]" * depth + "\n")
    assert error.line == 17 and "nested more than 32 deep" in str(error)


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("{name: a_read,", "{name: [a_read],"), 9, "steps[0].name must be non-empty text, not a list"),
        (("session: b, sql", "session: [b], sql"), 10, "steps[1].session must be non-empty text, not a list"),
        (("invariants:", "permutations: [[a_read, [b-1]]]\ninvariants:"), 12,
         "permutations[0][1] must be non-empty text, not a list"),
        (("rows: {a_read: [[10]]}", "blocked: [{a_read: 1}]"), 16, "blocked[0] must be non-empty text, not a mapping"),
        (("title: A tiny scenario", "title: 1984"), 2, "title must be non-empty text, not a number"),
        (("  a: {}", "  [a]: {}"), 6, "a key must be text, not a list"),
        (("title: A tiny scenario", "title: 2017-13-45"), 2, "cannot read '2017-13-45': month must be in 1..12"),
        (("title: A tiny scenario", "title: " + "9" * 5000), 2, "cannot read '9999"),
        (("rows: {a_read: [[10]]}", "errors: {a_read: 00000}"), 16, "'0' is not a SQLSTATE"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_at_its_line(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    old, new = change
    assert old in VALID
    error = error_for(tmp_path, VALID.replace(old, new, 1))
    assert message in str(error) and error.line == line, str(error)
    assert "\n" not in str(error) and len(str(error)) < 400


@pytest.mark.parametrize("char", ["\x01", "\x1b", "\x7f", "\x0c"])
def test_a_control_character_is_named_escaped_on_one_line_with_its_line(tmp_path: Path, char: str) -> None:
    error = error_for(tmp_path, VALID.replace("Two sessions", f"Two{char}sessions"))
    assert error.line == 3 and repr(char) in str(error) and "\n" not in str(error)


def test_bytes_that_are_not_utf8_are_one_line_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_bytes(VALID.encode().replace(b"A tiny", b"A \xff tiny"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.line == 2 and "not UTF-8 text: byte 0xff" in str(caught.value)


def test_a_huge_value_is_quoted_shortened_and_a_huge_file_refused(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("level: serializable", "level: " + "x" * 100_000))
    assert error.line == 7 and "unknown isolation level 'xxxx" in str(error) and len(str(error)) < 400
    error = error_for(tmp_path, VALID.replace("title: A tiny scenario", "title: " + "x" * 1_000_000))
    assert "larger than 256 KB" in str(error) and len(str(error)) < 400


def test_non_text_keys_in_a_python_scenario_are_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "SCENARIO = {'name': 'x', 1: 'one', ('a',): 2}\ndef play(run):\n    pass\n", "keys.py")
    with pytest.raises(ScenarioError, match=r"keys\.py: a key in the scenario must be text, not a number$"):
        load_scenario(path)


@pytest.mark.parametrize("value", ["&a [*a]", "&a {key: *a}", "&a [x, [y, *a]]"])
def test_an_alias_inside_the_value_it_names_is_one_line_not_a_hang(tmp_path: Path, value: str) -> None:
    """A recursive alias would never finish expanding (before: the size check looped forever,
    its memory growing). In a child process, so that a regression fails instead of hanging."""
    path = write(tmp_path, VALID + f"permutations: {value}\n")
    done = subprocess.run(
        [sys.executable, "-m", "txnlab", "show", str(path)], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"txnlab: error: {path}:17: an alias (*name) stands for a value that contains it\n"


def test_the_format_docs_and_docstrings_name_only_the_current_json_schema_version() -> None:
    """Merged branches wrote 'new keys of schema_version 1' while JSON moved to 2: every
    `schema_version N` the docs and the source mention is the one txnlab prints."""
    from txnlab.timeline import JSON_SCHEMA_VERSION

    texts = {"docs/scenario-format.md": (DOCS / "scenario-format.md").read_text()}
    source = Path(__file__).parent.parent / "src" / "txnlab"
    texts |= {str(path.relative_to(source)): path.read_text() for path in source.rglob("*.py")}
    stale = {
        (name, found)
        for name, text in texts.items()
        for found in re.findall(r'schema_version"?:? (\d+)', text)
        if int(found) != JSON_SCHEMA_VERSION
    }
    assert stale == set()
