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
from txnlab.render.isolationtester import pqprint
from txnlab.runner.lab import Lab
from txnlab.scenario import Scenario
from txnlab.timeline import Event, Outcome, Timeline

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
    "insert-conflict-do-nothing": """
        name: insert-conflict-do-nothing
        title: isolationtester's insert-conflict-do-nothing
        summary: The second of two conflicting inserts waits, then does nothing or inserts its own row.
        setup: CREATE TABLE ints (key int primary key, val text);
        sessions:
          s1: {autocommit: true, setup: BEGIN ISOLATION LEVEL READ COMMITTED;}
          s2: {autocommit: true, setup: BEGIN ISOLATION LEVEL READ COMMITTED;}
        steps:
          - {name: donothing1, session: s1, sql: "INSERT INTO ints(key, val) VALUES(1, 'donothing1') ON CONFLICT DO NOTHING;"}
          - {name: c1, session: s1, sql: COMMIT;}
          - {name: a1, session: s1, sql: ABORT;}
          - {name: donothing2, session: s2, sql: "INSERT INTO ints(key, val) VALUES(1, 'donothing2') ON CONFLICT DO NOTHING;"}
          - {name: select2, session: s2, sql: SELECT * FROM ints;}
          - {name: c2, session: s2, sql: COMMIT;}
        levels: [rc]
        expect: {rc: {}}
    """,
    # Values as the server prints them in pg_regress's DateStyle: numeric(13,2) keeps 1.00.
    "receipt-report": """
        name: receipt-report
        title: isolationtester's receipt-report
        summary: A READ ONLY report sees a batch close but not all of its receipts; SSI refuses one of them.
        setup: |
          CREATE TABLE ctl (k text NOT NULL PRIMARY KEY, deposit_date date NOT NULL);
          INSERT INTO ctl VALUES ('receipt', DATE '2008-12-22');
          CREATE TABLE receipt (receipt_no int NOT NULL PRIMARY KEY, deposit_date date NOT NULL, amount numeric(13,2));
          INSERT INTO receipt VALUES (1, (SELECT deposit_date FROM ctl WHERE k = 'receipt'), 1.00);
          INSERT INTO receipt VALUES (2, (SELECT deposit_date FROM ctl WHERE k = 'receipt'), 2.00);
        sessions:
          s1: {autocommit: true, setup: ["SET DateStyle = 'Postgres, MDY'", BEGIN ISOLATION LEVEL SERIALIZABLE;]}
          s2: {autocommit: true, setup: ["SET DateStyle = 'Postgres, MDY'", BEGIN ISOLATION LEVEL SERIALIZABLE;]}
          s3: {autocommit: true, setup: ["SET DateStyle = 'Postgres, MDY'", "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY;"]}
        steps:
          - {name: rxwy1, session: s1, sql: "INSERT INTO receipt VALUES (3, (SELECT deposit_date FROM ctl WHERE k = 'receipt'), 4.00);"}
          - {name: c1, session: s1, sql: COMMIT;}
          - {name: wx2, session: s2, sql: "UPDATE ctl SET deposit_date = DATE '2008-12-23' WHERE k = 'receipt';"}
          - {name: c2, session: s2, sql: COMMIT;}
          - {name: rx3, session: s3, sql: "SELECT * FROM ctl WHERE k = 'receipt';"}
          - {name: ry3, session: s3, sql: "SELECT * FROM receipt WHERE deposit_date = DATE '2008-12-22';"}
          - {name: c3, session: s3, sql: COMMIT;}
        levels: [ser]
        expect: {ser: {}}
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


def result_lines(event: Event) -> list[str]:
    """A step's rows as isolationtester prints them (libpq's PQprint, txnlab.render.isolationtester),
    from the server's text in the timeline: the value txnlab shows must be, character for
    character, psql's. Blank lines are dropped, as in `expected_permutations`."""
    return [line for result in event.result_sets() for line in pqprint(result).split("\n") if line]


def isolationtester_lines(scenario: Scenario, timeline: Timeline) -> list[str]:
    """The timeline as isolationtester prints it: steps, waits, completions, rows, errors."""
    lines = []
    for event in timeline.events:
        if event.after_wait:
            lines.append(f"step {event.step}: <... completed>")
        else:
            waiting = " <waiting ...>" if event.outcome is Outcome.BLOCKED else ""
            lines.append(f"step {event.step}: {scenario.steps[event.step].sql}{waiting}")
        lines += result_lines(event)
        if event.outcome is Outcome.ERROR and event.error is not None:
            lines.append(f"ERROR:  {event.error.message}")
    return lines


# receipt-report's expected output has all 210 orders of its steps: those where SSI refuses a
# step and every 10th other keep the suite quick, with reads before and after each commit.
EVERY = {"receipt-report": 10}

CASES = [
    pytest.param(name, permutation, lines, id=f"{name}[{' '.join(permutation)}]")
    for name in TRANSLATIONS
    if (SPECS / "expected" / f"{name}.out").exists()
    for index, (permutation, lines) in enumerate(expected_permutations(name))
    if index % EVERY.get(name, 1) == 0 or any(line.startswith("ERROR") for line in lines)
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
