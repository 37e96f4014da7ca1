"""A `.spec` file (PostgreSQL's isolation test format) parses into the same scenario model
as YAML and Python scenarios: every spec of PostgreSQL's corpus parses, its permutations are
the ones isolationtester runs (listed, or every interleaving in isolationtester's order),
and each problem isolationtester refuses is one `file:line: problem` line, exit 2.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from txnlab.errors import ExitCode, ScenarioError
from txnlab.scenario.model import Blocker
from txnlab.scenario.permutations import interleaving_count, interleavings
from txnlab.scenario.spec_source import load_spec, parse_spec

SPECS = Path(__file__).resolve().parents[2] / "shared" / "pg-isolation-specs"
needs_corpus = pytest.mark.skipif(not (SPECS / "specs").is_dir(), reason=f"no isolation spec corpus at {SPECS}")


def corpus() -> list[Path]:
    return sorted((SPECS / "specs").glob("*.spec")) if (SPECS / "specs").is_dir() else []


@needs_corpus
@pytest.mark.parametrize("spec", corpus(), ids=lambda p: p.stem)
def test_every_corpus_spec_parses_into_the_permutations_and_step_text_isolationtester_prints(spec: Path) -> None:
    scenario = load_spec(spec)
    expected = (SPECS / "expected" / f"{spec.stem}.out").read_text()
    started = [line.split(": ", 1)[1].split(" ") for line in expected.splitlines()
               if line.startswith("starting permutation: ")]
    assert [list(p) for p in scenario.permutations] == started
    for name, first_line in re.findall(r"^step (\S+): (.*)$", expected, re.M):
        if first_line != "<... completed>":
            sql_first_line = scenario.steps[name].sql.split("\n")[0]
            assert first_line in (sql_first_line, f"{sql_first_line} <waiting ...>")
    assert scenario.isolationtester and all(s.autocommit for s in scenario.sessions)


SPEC = """# A comment before anything
setup { CREATE TABLE t (i int); }
setup { INSERT INTO t VALUES (1); }
teardown { DROP TABLE t; }
session s1
setup { BEGIN; }
step a { UPDATE t SET i = 2; }
step "b c" {
  COMMIT;
}
teardown { RESET ALL; }
session "s2"
step d {}
permutation a d(a, *) "b c"(d notices 2)
"""


def test_a_spec_keeps_sql_blocks_as_written_without_the_blanks_around_the_braces() -> None:
    scenario = parse_spec(SPEC, "x.spec")
    assert scenario.setup == ("CREATE TABLE t (i int);", "INSERT INTO t VALUES (1);")
    assert scenario.teardown == ("DROP TABLE t;",)
    assert scenario.steps["b c"].sql == "\n  COMMIT;\n"
    assert scenario.steps["d"].sql == ""
    assert scenario.session("s1").setup == ("BEGIN;",) and scenario.session("s1").teardown == ("RESET ALL;",)
    assert [s.name for s in scenario.sessions] == ["s1", "s2"]
    assert scenario.lines["step.b c"] == 8 and scenario.lines["setup.1"] == 3


def test_permutation_markers_are_kept_per_step_of_the_permutation() -> None:
    scenario = parse_spec(SPEC, "x.spec")
    assert scenario.permutations == (("a", "d", "b c"),)
    assert scenario.blockers(0, 0) == ()
    assert scenario.blockers(0, 1) == (Blocker(step="a"), Blocker())
    assert scenario.blockers(0, 2) == (Blocker(step="d", notices=2),)


def test_without_permutation_lines_every_interleaving_runs_first_session_first() -> None:
    scenario = parse_spec("session a step a1 {} step a2 {} session b step b1 {}", "x.spec")
    assert scenario.permutations == (("a1", "a2", "b1"), ("a1", "b1", "a2"), ("b1", "a1", "a2"))
    assert interleaving_count([["a1", "a2"], ["b1"]]) == 3
    assert len(list(interleavings([["x"] * 3, ["y"] * 3, ["z"] * 2]))) == interleaving_count(
        [["x"] * 3, ["y"] * 3, ["z"] * 2]) == 560


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("session s step a { SELECT 1;", 1, "unterminated SQL block"),
        ("session s\nstep a {}\nstep a {}", 3, "duplicate step name: a"),
        ("session s step a {}\npermutation a b", 2, "undefined step 'b' in permutation"),
        ("session s step a {} step b {}\npermutation a b(a)", 2, "cannot wait for a: both are session s's"),
        ("session s step a {} session t step b {}\npermutation a(c) b", 2, "'c', which is not a step of this"),
        ("session s step a {} session s step b {}", 1, "duplicate session name: s"),
        ("session s\nstep step {}", 2, "quote a keyword to use it as a name"),
        ("session s step a {}\n\n@", 3, "unexpected character '@'"),
        ('session "s\n" step a {}', 1, "unterminated quoted name"),
        ("setup { }\n", 2, "expected 'session', found the end of the file"),
        ("session s step a {} setup {}", 1, "unexpected 'setup' (the order is: setup, teardown, sessions"),
        ("session s step a {} session t step b {}\npermutation a(b notices x)", 2, "expected a number of notices"),
    ],
)
def test_each_problem_is_one_line_naming_the_file_and_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_spec(text, "bad.spec")
    message = str(caught.value)
    assert message.startswith(f"bad.spec:{line}: ") and problem in message and "\n" not in message
    assert caught.value.exit_code is ExitCode.BAD_INPUT


def test_a_spec_that_is_not_utf8_or_cannot_be_read_is_one_calm_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.spec"
    latin1.write_bytes(b"session s\nstep a { SELECT 'caf\xe9'; }\n")
    with pytest.raises(ScenarioError) as caught:
        load_spec(latin1)
    assert str(caught.value) == f"{latin1}:2: not UTF-8 text: byte 0xe9 cannot start or continue a character"
    folder = tmp_path / "folder.spec"
    folder.mkdir()
    with pytest.raises(ScenarioError) as caught:
        load_spec(folder)
    assert str(caught.value) == f"{folder}: cannot read the spec: Is a directory"
