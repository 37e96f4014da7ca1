"""What the history could not see is always said: reads it does not record (an aggregate, a
subquery, INSERT ... SELECT, a cursor, a view, a self-join...) are listed, one per step and
table, and no view says "serializable" of a history with such gaps; the matrix (text, Markdown,
JSON) keeps them; ambiguous reads are said once, from the reads themselves. Real runs on the
real server (the reviewer's repros of issue 11, findings 2, 6, 10, 12 and P3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from txnlab.history.coverage import references
from txnlab.history.model import UnrecordedRead
from txnlab.levels import Level
from txnlab.render import markdown, text
from txnlab.render.derived import HEADING, MATRIX_NONE, NO_CYCLE, caveat_lines
from txnlab.render.report import RunReport
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue
from txnlab.timeline import Outcome
from txnlab.workflow import run_cell

AGGREGATE_SKEW = """\
name: aggregate-skew
title: write skew through sum()
summary: both read the total, each withdraws from a different account.
setup: |
  CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);
  INSERT INTO acct VALUES (1, 50), (2, 50);
sessions: {a: {}, b: {}}
steps:
  - {name: a_sum, session: a, sql: "SELECT sum(bal) AS total FROM acct"}
  - {name: b_sum, session: b, sql: "SELECT sum(bal) AS total FROM acct"}
  - {name: a_w, session: a, sql: "UPDATE acct SET bal = bal - 90 WHERE id = 1"}
  - {name: b_w, session: b, sql: "UPDATE acct SET bal = bal - 90 WHERE id = 2"}
  - {name: a_c, session: a, sql: "COMMIT"}
  - {name: b_c, session: b, sql: "COMMIT"}
expect: {all: {}}
"""

GUARDED_SKEW = """\
name: guarded-skew
title: write skew through a guarded UPDATE
summary: each doctor goes off call if at least two are on call.
setup: |
  CREATE TABLE doctors (name text PRIMARY KEY, on_call boolean NOT NULL);
  INSERT INTO doctors VALUES ('alice', true), ('bob', true);
sessions: {a: {}, b: {}}
steps:
  - {name: a_off, session: a, sql: "UPDATE doctors SET on_call = false WHERE name = 'alice' AND (SELECT count(*) FROM doctors WHERE on_call) >= 2"}
  - {name: b_off, session: b, sql: "UPDATE doctors SET on_call = false WHERE name = 'bob' AND (SELECT count(*) FROM doctors WHERE on_call) >= 2"}
  - {name: a_c, session: a, sql: "COMMIT"}
  - {name: b_c, session: b, sql: "COMMIT"}
expect: {all: {}}
"""

SELF_JOIN = """\
name: self-join
title: a self-join's columns from two rows match a third row that was never read
summary: b reads x.v of row 1 and y.w of row 2; (5, 7) is row 3's values.
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, w int NOT NULL);
  INSERT INTO t VALUES (1, 5, 0), (2, 0, 7), (3, 5, 7), (4, 0, 0);
sessions: {a: {}, b: {}}
steps:
  - {name: b_join, session: b, sql: "SELECT x.v, y.w FROM t x, t y WHERE x.id = 1 AND y.id = 2"}
  - {name: a_r4, session: a, sql: "SELECT id, v, w FROM t WHERE id = 4"}
  - {name: a_w3, session: a, sql: "UPDATE t SET v = 6 WHERE id = 3"}
  - {name: b_w4, session: b, sql: "UPDATE t SET v = 1 WHERE id = 4"}
  - {name: a_c, session: a, sql: "COMMIT"}
  - {name: b_c, session: b, sql: "COMMIT"}
expect: {all: {}}
"""

# One transaction reading in every way the history cannot record, and two ways it can.
KINDS = """\
name: read-kinds
title: every kind of read
summary: one transaction reads t in many ways.
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
  CREATE TABLE u (id int PRIMARY KEY, w int NOT NULL);
  CREATE VIEW tv AS SELECT id, v FROM t;
  INSERT INTO t VALUES (1, 10), (2, 20);
  INSERT INTO u VALUES (1, 0);
sessions: {a: {}, b: {}}
steps:
  - {name: nothing, session: b, sql: "SELECT 1 AS one"}
  - {name: plain, session: a, sql: "SELECT id, v FROM t WHERE id = 1"}
  - {name: counted, session: a, sql: "SELECT count(*) FROM t WHERE v > 5"}
  - {name: computed, session: a, sql: "SELECT v * 2 FROM t WHERE v > 5 AND v < 100 AND id > 0"}
  - {name: cte, session: a, sql: "WITH big AS (SELECT id FROM t WHERE v > 15) SELECT 1 AS one FROM big"}
  - {name: copied, session: a, sql: "INSERT INTO u SELECT id + 10, v FROM t"}
  - {name: joined, session: a, sql: "UPDATE u SET w = t.v FROM t WHERE t.id = u.id"}
  - {name: twice, session: a, sql: "SELECT (SELECT max(v) FROM t) + (SELECT min(v) FROM t) AS spread"}
  - {name: viewed, session: a, sql: "SELECT id, v FROM tv"}
  - {name: cursor, session: a, sql: "DECLARE c CURSOR FOR SELECT id, v FROM t"}
  - {name: fetched, session: a, sql: "FETCH ALL FROM c"}
  - {name: a_c, session: a, sql: "COMMIT"}
expect: {all: {}}
"""


def run_yaml(lab: Lab, tmp_path: Path, source: str, level: Level) -> RunReport:
    name = source.split("\n", 1)[0].removeprefix("name: ")
    (tmp_path / f"{name}.yaml").write_text(source)
    return run_cell(lab, Catalogue(user=[tmp_path]).resolve(name), level)


def unrecorded(report: RunReport) -> dict[tuple[str, str | None], str]:
    assert report.analysis is not None, "the run recorded no history"
    return {(u.step, u.table): u.how for u in report.analysis.history.unrecorded}


def derived_block(report: RunReport) -> list[str]:
    out = text.render_timeline(report, width=200)
    return out[out.index(HEADING):].splitlines()


# -- finding 6: reads the history does not record -------------------------------------------------


def test_an_aggregate_write_skew_is_never_called_serializable_and_its_reads_are_named(
        lab: Lab, tmp_path: Path) -> None:
    report = run_yaml(lab, tmp_path, AGGREGATE_SKEW, Level.REPEATABLE_READ)
    assert report.analysis is not None and report.analysis.anomalies == ()
    assert unrecorded(report) == {("a_sum", "acct"): "an aggregate", ("b_sum", "acct"): "an aggregate"}
    said = derived_block(report)
    assert said[1] == "  no cycle among what was observed; not observed: 2 reads not recorded (below)"
    assert ("  a_sum read acct in a way the history does not record (an aggregate): a cycle through that read "
            "cannot be seen") in said
    assert NO_CYCLE not in "\n".join(said)


def test_a_write_guarded_by_a_subquery_is_an_unrecorded_read_one_per_step_and_table(
        lab: Lab, tmp_path: Path) -> None:
    report = run_yaml(lab, tmp_path, GUARDED_SKEW, Level.REPEATABLE_READ)
    assert unrecorded(report) == {("a_off", "doctors"): "a subquery", ("b_off", "doctors"): "a subquery"}
    assert NO_CYCLE not in markdown.render_timeline(report)


def test_every_kind_of_unrecorded_read_is_named_and_recorded_reads_are_not(lab: Lab, tmp_path: Path) -> None:
    report = run_yaml(lab, tmp_path, KINDS, Level.REPEATABLE_READ)
    assert all(e.outcome is Outcome.OK for e in report.timeline.events), "every step ran"
    assert unrecorded(report) == {
        ("computed", "t"): "a computed column",
        ("cte", "t"): "a CTE",
        ("copied", "t"): "INSERT ... SELECT",
        ("joined", "t"): "UPDATE ... FROM",
        ("joined", "u"): "its WHERE clause, which was not re-evaluated",
        ("twice", "t"): "a subquery",
        ("viewed", "tv"): "through a view, or a relation the history does not track",
        ("cursor", "t"): "a cursor: its FETCH rows are not recorded",
    }  # `plain` (rows) and `counted` (count(*) of a WHERE clause re-evaluated) are recorded


def test_the_catalogue_reads_in_the_atm_are_all_recorded(lab: Lab, catalogue: Catalogue) -> None:
    report = run_cell(lab, catalogue.resolve("atm-lost-update"), Level.READ_COMMITTED)
    assert unrecorded(report) == {}


def test_unparsable_sql_reads_in_a_way_that_is_never_recorded() -> None:
    assert references("SELECT FROM WHERE (") is None
    assert UnrecordedRead("a", "s1", None, "its SQL, which pglast cannot parse").sentence == (
        "s1 ran its SQL, which pglast cannot parse: what it read is not recorded, so a cycle through it cannot be seen")


@pytest.mark.parametrize(("sql", "named"), [
    ("CREATE TABLE n AS SELECT id FROM t", [("t", "CREATE TABLE ... AS")]),
    ("EXPLAIN ANALYZE SELECT * FROM t", [("t", "EXPLAIN ANALYZE")]),
    ("EXPLAIN SELECT * FROM t", []),
    ("COPY t TO STDOUT", [("t", "COPY ... TO")]),
    ("COPY t FROM STDIN", []),
    ("LOCK TABLE t", []),
    ("INSERT INTO t VALUES (1, (SELECT max(v) FROM u))", [("u", "a subquery")]),
    ("DELETE FROM t USING u WHERE t.id = u.id",
     [("t", "its WHERE clause, which was not re-evaluated"), ("u", "DELETE ... USING")]),
    ("SELECT a.id FROM t a UNION SELECT id FROM u", [("t", "a set operation"), ("u", "a set operation")]),
])
def test_each_statement_names_the_relations_it_reads_and_how(sql: str, named: list[tuple[str, str]]) -> None:
    assert [(r.relation, r.how) for r in references(sql) or ()] == named


def test_the_catalogue_and_a_cte_name_are_not_views() -> None:
    named = references("WITH c AS (SELECT 1) SELECT * FROM c, pg_locks, pg_catalog.pg_class, information_schema.tables")
    assert named == ()


# -- finding 2: self-joins ------------------------------------------------------------------------


@pytest.mark.parametrize("level", [Level.REPEATABLE_READ, Level.SERIALIZABLE])
def test_a_self_join_is_not_matched_as_one_row_and_gives_no_false_cycle(
        lab: Lab, tmp_path: Path, level: Level) -> None:
    report = run_yaml(lab, tmp_path, SELF_JOIN, level)
    assert report.analysis is not None
    assert [r for r in report.analysis.history.reads if r.step == "b_join"] == []
    assert [a.name for a in report.analysis.anomalies] == []  # was a false G2-item: b "read" t[3]
    how = unrecorded(report)[("b_join", "t")]
    assert how.startswith("a self-join")


# -- finding 10: the matrix keeps the caveats ------------------------------------------------------


def test_the_matrix_never_calls_a_run_with_unrecorded_reads_serializable(lab: Lab, tmp_path: Path) -> None:
    report = run_yaml(lab, tmp_path, AGGREGATE_SKEW, Level.REPEATABLE_READ)
    for page in (" ".join(text.render_matrix([report], width=120).split()), markdown.render_matrix([report])):
        assert MATRIX_NONE not in page
        assert ("aggregate-skew at repeatable read: no cycle among what was observed; not observed: 2 reads not "
                "recorded") in page


def test_matrix_and_run_json_carry_the_history_gaps(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "aggregate-skew.yaml"
    path.write_text(AGGREGATE_SKEW)
    code, out, err = cli("matrix", str(path), "--level", "rr", "--format", "json")
    assert code == 0, err
    [verdict] = json.loads(out)["verdicts"]
    assert verdict["derived_anomalies"] == []
    assert [g for g in verdict["history_gaps"] if "does not record (an aggregate)" in g] != []
    code, out, err = cli("run", str(path), "--level", "rr", "--format", "json")
    [run] = json.loads(out)["runs"]
    assert run["history_gaps"] == verdict["history_gaps"]
    assert {(u["step"], u["table"], u["how"]) for u in run["history"]["unrecorded_reads"]} == {
        ("a_sum", "acct", "an aggregate"), ("b_sum", "acct", "an aggregate")}


def test_a_run_that_saw_everything_has_no_history_gaps_in_json(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("matrix", "hermitage-g-single", "--level", "rr", "--format", "json")
    assert code == 0, err
    assert [v["history_gaps"] for v in json.loads(out)["verdicts"]] == [[]]


# -- P3: an ambiguous read is said once, from the reads ----------------------------------------------

ON_CALL = (Path(__file__).parent / "history_cases" / "on-call.yaml").read_text()  # a user's write skew


def test_history_gaps_do_not_repeat_the_reads_own_ambiguity(lab: Lab, tmp_path: Path) -> None:
    report = run_yaml(lab, tmp_path, ON_CALL, Level.REPEATABLE_READ)
    assert report.analysis is not None
    assert any(len(r.candidates) > 1 for r in report.analysis.history.reads)
    assert not any("ambiguous" in gap or gap.startswith("a_count") for gap in report.analysis.history.gaps)
    lines = caveat_lines(report.analysis)
    assert [line for line in lines if "a_count" in line] == [
        "ambiguous (equal values in several versions, so no edge): a_count (doctors)"]


# -- finding 8: the words say which edges are inferred ---------------------------------------------


def test_the_atm_explanation_marks_its_inferred_edge_and_only_it(lab: Lab, catalogue: Catalogue) -> None:
    """atm2's read returned no key (inferred from its values); the two writes are in the log."""
    report = run_cell(lab, catalogue.resolve("atm-lost-update"), Level.READ_COMMITTED)
    assert report.analysis is not None
    [anomaly] = report.analysis.anomalies
    assert anomaly.explanation[0] == "Let atm1 and atm2 be committed transactions (atm2 < atm1 is inferred, not observed)."
    assert {(e.kind, e.inferred) for e in anomaly.cycle} == {("rw", True), ("ww", False)}
    assert "atm1 < atm2 is inferred" not in "\n".join(anomaly.explanation)
    assert "(atm2 < atm1 is inferred, not observed)" in text.render_timeline(report, width=120)


# -- finding 12: the Elle export of a connection that is no session's ------------------------------


def test_elle_gives_a_pool_connections_transaction_its_own_process_spanning_the_run(cli) -> None:  # type: ignore[no-untyped-def]
    """sqlalchemy-session-begin: the engine's own connection (no session's) commits two writes
    that the app's session reads; it was process 0 at time 0, colliding with the first session."""
    code, out, err = cli("run", "sqlalchemy-session-begin", "--level", "rc", "--format", "elle")
    assert code == 0, err
    ops = json.loads(out)
    code, out, err = cli("run", "sqlalchemy-session-begin", "--level", "rc", "--format", "json")
    [run] = json.loads(out)["runs"]
    sessions = run["sessions"]
    pool = [t for t in run["history"]["transactions"] if t["id"].startswith("pid ")]
    assert pool and all(t["writes"] for t in pool)
    theirs = [op for op in ops if op["process"] >= len(sessions)]
    assert len(theirs) == 2 * len(pool)
    assert {op["process"] for op in theirs} == set(range(len(sessions), len(sessions) + len(pool)))
    invoke, done = theirs[0], theirs[-1]
    assert invoke["type"] == "invoke" and invoke["index"] == 0 and invoke["time"] == 0
    assert done["type"] == "ok" and done["time"] == max(op["time"] for op in ops)
    assert all(op["process"] < len(sessions) for op in ops if op not in theirs)


# -- finding 12: "did not commit" only for a transaction that tried to write -------------------------

READ_ONLY_ABORT = """\
name: read-only-abort
title: a reader rolls back, a writer's UPDATE fails
summary: only the writer tried to write.
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO t VALUES (1, 10);
sessions: {reader: {}, writer: {}}
steps:
  - {name: reader_reads, session: reader, sql: "SELECT id, v FROM t WHERE id = 1"}
  - {name: reader_gives_up, session: reader, sql: ROLLBACK}
  - {name: writer_fails, session: writer, sql: "UPDATE t SET v = 1 / 0 WHERE id = 1"}
  - {name: writer_rollback, session: writer, sql: ROLLBACK}
expect: {all: {errors: {writer_fails: "22012"}}}
"""


def test_did_not_commit_is_said_only_of_the_transactions_that_tried_to_write(lab: Lab, tmp_path: Path) -> None:
    report = run_yaml(lab, tmp_path, READ_ONLY_ABORT, Level.READ_COMMITTED)
    assert report.analysis is not None
    assert [t.outcome for t in report.analysis.history.transactions] == ["aborted", "aborted"]
    unlogged = [gap for gap in report.analysis.history.gaps if "did not commit" in gap]
    assert unlogged == ["writer did not commit: what it wrote is not logged, so a read of it (G1a) cannot be derived"]


# -- finding 12: a transaction's intermediate write changes no condition's matches -----------------

REINSERT = """\
name: reinsert
title: delete then re-insert of a key, then an upsert
summary: a deletes k=1 and re-inserts it; b upserts; c reads twice at read committed.
setup: |
  CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL);
  INSERT INTO kv VALUES (1, 10);
sessions: {a: {}, b: {}, c: {}}
steps:
  - {name: c_r, session: c, sql: "SELECT k, v FROM kv WHERE k = 1"}
  - {name: a_del, session: a, sql: "DELETE FROM kv WHERE k = 1"}
  - {name: a_ins, session: a, sql: "INSERT INTO kv VALUES (1, 10)"}
  - {name: a_c, session: a, sql: "COMMIT"}
  - {name: b_up, session: b, sql: "INSERT INTO kv VALUES (1, 5) ON CONFLICT (k) DO UPDATE SET v = kv.v + excluded.v"}
  - {name: b_c, session: b, sql: "COMMIT"}
  - {name: c_r2, session: c, sql: "SELECT k, v FROM kv WHERE k = 1"}
  - {name: c_c, session: c, sql: "COMMIT"}
expect: {all: {}}
"""


def test_a_delete_then_reinsert_of_one_key_gives_no_predicate_edge_and_no_deleted_row_seen(
        lab: Lab, tmp_path: Path) -> None:
    """c's condition k = 1 matched before a's transaction and after it: a's DELETE was an
    intermediate version no one saw (it said "c ... saw kv[1] (deleted)")."""
    report = run_yaml(lab, tmp_path, REINSERT, Level.READ_COMMITTED)
    assert report.analysis is not None
    assert [e for e in report.analysis.edges if e.predicate] == []
    [anomaly] = report.analysis.anomalies
    assert anomaly.name == "G-single" and "(deleted)" not in "\n".join(anomaly.explanation)
    assert {(e.source, e.kind, e.target) for e in anomaly.cycle} == {("c", "rw", "a"), ("a", "ww", "b"), ("b", "wr", "c")}
