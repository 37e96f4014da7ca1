"""The model expresses PostgreSQL's own isolationtester specs, and the runner reproduces their
expected output: specs from ../shared/pg-isolation-specs, translated by hand into scenario
files (autocommit sessions, per-session setup, every permutation of the expected output),
rendered the way isolationtester prints, and compared line by line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_text import scenario_from_yaml

from txnlab.levels import Level
from txnlab.runner.lab import Lab
from txnlab.scenario import Scenario
from txnlab.timeline import Outcome, Timeline

SPECS = Path(__file__).resolve().parents[2] / "shared" / "pg-isolation-specs"

TRANSLATIONS = {
    "simple-write-skew": """
        name: simple-write-skew
        title: isolationtester's simple-write-skew
        summary: Two SERIALIZABLE transactions each update the row the other reads.
        setup: |
          CREATE TABLE test (i int PRIMARY KEY, t text);
          INSERT INTO test VALUES (5, 'apple'), (7, 'pear'), (11, 'banana');
        sessions:
          s1: {autocommit: true, setup: BEGIN ISOLATION LEVEL SERIALIZABLE;}
          s2: {autocommit: true, setup: BEGIN ISOLATION LEVEL SERIALIZABLE;}
        steps:
          - {name: rwx1, session: s1, sql: "UPDATE test SET t = 'apple' WHERE t = 'pear';"}
          - {name: c1, session: s1, sql: "COMMIT;"}
          - {name: rwx2, session: s2, sql: "UPDATE test SET t = 'pear' WHERE t = 'apple'"}
          - {name: c2, session: s2, sql: "COMMIT;"}
        levels: [ser]
        expect: {ser: {}}
    """,
    "deadlock-simple": """
        name: deadlock-simple
        title: isolationtester's deadlock-simple
        summary: Two sessions upgrade the same table lock; the deadlock detector's special case.
        setup: CREATE TABLE a1 ();
        sessions:
          s1: {autocommit: true, setup: BEGIN;}
          s2: {autocommit: true, setup: BEGIN;}
        steps:
          - {name: s1as, session: s1, sql: LOCK TABLE a1 IN ACCESS SHARE MODE;}
          - {name: s1ae, session: s1, sql: LOCK TABLE a1 IN ACCESS EXCLUSIVE MODE;}
          - {name: s1c, session: s1, sql: COMMIT;}
          - {name: s2as, session: s2, sql: LOCK TABLE a1 IN ACCESS SHARE MODE;}
          - {name: s2ae, session: s2, sql: LOCK TABLE a1 IN ACCESS EXCLUSIVE MODE;}
          - {name: s2c, session: s2, sql: COMMIT;}
        levels: [rc]
        expect: {rc: {}}
    """,
}


def expected_permutations(name: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(permutation, the lines isolationtester printed for it) from expected/NAME.out."""
    text = (SPECS / "expected" / f"{name}.out").read_text()
    blocks = text.split("\nstarting permutation: ")[1:]
    result = []
    for block in blocks:
        header, *lines = block.rstrip("\n").split("\n")
        result.append((tuple(header.split()), [line for line in lines if line]))
    return result


def isolationtester_lines(scenario: Scenario, timeline: Timeline) -> list[str]:
    """The timeline as isolationtester prints it (enough for specs whose steps return no rows)."""
    lines = []
    for event in timeline.events:
        if event.after_wait:
            lines.append(f"step {event.step}: <... completed>")
        else:
            waiting = " <waiting ...>" if event.outcome is Outcome.BLOCKED else ""
            lines.append(f"step {event.step}: {scenario.steps[event.step].sql}{waiting}")
        if event.outcome is Outcome.ERROR and event.error is not None:
            lines.append(f"ERROR:  {event.error.message}")
    return lines


CASES = [
    pytest.param(name, permutation, lines, id=f"{name}[{' '.join(permutation)}]")
    for name in TRANSLATIONS
    if (SPECS / "expected" / f"{name}.out").exists()
    for permutation, lines in expected_permutations(name)
]


@pytest.mark.skipif(not SPECS.is_dir(), reason=f"PostgreSQL's isolation specs are not at {SPECS}")
@pytest.mark.parametrize(("name", "permutation", "expected"), CASES)
def test_a_translated_spec_prints_what_isolationtester_expects(
    lab: Lab, name: str, permutation: tuple[str, ...], expected: list[str]
) -> None:
    scenario = scenario_from_yaml(TRANSLATIONS[name])
    level = scenario.levels[0]
    assert level in (Level.SERIALIZABLE, Level.READ_COMMITTED)
    timeline = lab.run(scenario, level, permutation)
    assert isolationtester_lines(scenario, timeline) == expected
