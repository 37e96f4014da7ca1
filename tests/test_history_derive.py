"""The history stage derives each run's dependency cycles from what the server recorded and
names them as Adya and Elle do; for the Hermitage catalogue the derived names agree with the
declared anomalies, and where they differ the server's facts say why (FINDINGS).

Real runs on the real server, plus the classifier on hand-built edges.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from txnlab.history import analyse
from txnlab.history.classify import intermediate_reads, name, shortest_cycles
from txnlab.history.model import (
    Analysis, Edge, History, HistoryCapture, LoggedWrite, Read, Transaction, VersionRef,
)
from txnlab.history.transactions import owners
from txnlab.levels import Level
from txnlab.render.derived import caveat_lines
from txnlab.render.report import RunReport
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue
from txnlab.scenario.catalogue import load_scenario
from txnlab.scenario.model import Scenario
from txnlab.timeline import Event, Outcome, Timeline
from txnlab.workflow import run_cell

RU, RC, RR, SER = Level.READ_UNCOMMITTED, Level.READ_COMMITTED, Level.REPEATABLE_READ, Level.SERIALIZABLE
PROJECTOR_COLUMNS = 100


def run(lab: Lab, scenario: Scenario, level: Level) -> RunReport:
    return run_cell(lab, scenario, level)


def derived(report: RunReport) -> tuple[str, ...]:
    assert report.analysis is not None, "the run recorded no history"
    return tuple(a.name for a in report.analysis.anomalies)


def scenario_named(catalogue: Catalogue, wanted: str) -> Scenario:
    return next(s for s in catalogue.scenarios.values() if s.name == wanted)


# --- the blog's ATM ---------------------------------------------------------------------------


def test_atm_lost_update_at_read_committed_is_derived_and_explained_in_five_projector_lines(
    lab: Lab, catalogue: Catalogue
) -> None:
    report = run(lab, scenario_named(catalogue, "atm-lost-update"), RC)
    assert derived(report) == ("lost update",)
    anomaly = report.analysis.anomalies[0]
    assert {(e.kind, e.source, e.target) for e in anomaly.cycle} == {("ww", "atm1", "atm2"), ("rw", "atm2", "atm1")}
    rw = next(e for e in anomaly.cycle if e.kind == "rw")
    assert rw.steps == ("atm2_read", "atm1_write")
    assert rw.evidence == ("atm2 read accounts[1].balance = 100 at atm2_read, "
                           "the version atm1 overwrote with 150 at atm1_write")
    assert rw.inferred, "the read returned no key: which row it was is inferred from its values"
    ww = next(e for e in anomaly.cycle if e.kind == "ww")
    assert not ww.inferred and ww.steps == ("atm1_write", "atm2_write")
    assert anomaly.weakest_violated is RR
    assert len(anomaly.explanation) <= 5
    assert all(len(line) <= PROJECTOR_COLUMNS for line in anomaly.explanation), anomaly.explanation
    words = "\n".join(anomaly.explanation)
    for said in ("Let atm1 and atm2", "However", "contradiction", "atm2_read", "lost update", "repeatable read"):
        assert said in words, words


@pytest.mark.parametrize("level", [RR, SER])
def test_atm_refused_stale_write_leaves_a_serializable_history(lab: Lab, catalogue: Catalogue, level: Level) -> None:
    report = run(lab, scenario_named(catalogue, "atm-lost-update"), level)
    assert derived(report) == ()
    atm2 = report.analysis.history.transaction("atm2")
    assert atm2.outcome == "aborted" and atm2.xid is None


# --- the Hermitage cross-check ----------------------------------------------------------------

# The derived name of each Hermitage test's cycle, when it happens (None: not derivable: G1a
# reads an aborted write, and aborted writes are not logged).
DERIVED_AS = {
    "G0": "G0", "G1a": None, "G1b": "G1b", "G1c": "G1c", "OTV": "G-single", "PMP": "G-single",
    "PMP-write": "G-single", "P4": "lost update", "G-single": "G-single", "G-single-dependencies": "G-single",
    "G-single-write-1": "G-single", "G-single-write-2": "G-single", "G2-item": "G2-item", "G2": "G2",
    "G2-two-edges": "G2-item",
}
# What the derivation finds where it disagrees with the declared anomaly, and why the
# server's facts side with the derivation (or why the derivation cannot see it).
FINDINGS: dict[tuple[str, Level], tuple[tuple[str, ...], str]] = {}
for _level in (RU, RC):
    FINDINGS[("G1b", _level)] = (("G-single",), "T2 read row 1 as 10, then (after T1's commit) as 11: a "
                                 "non-repeatable read, never T1's intermediate 101")
    FINDINGS[("OTV", _level)] = (("G-single",), "T3 read row 1 as T1's 11, then as T2's 12: a non-repeatable "
                                 "read; T1 never vanished from T3's view")
for _level in (RU, RC, RR):
    FINDINGS[("G1c", _level)] = (("G2-item",), "each read the other's row as it was before the other's write "
                                 "and both committed: write skew, not circular information flow")
FORBIDDEN = {
    RU: {"G0", "G1a", "G1b", "G1c"}, RC: {"G0", "G1a", "G1b", "G1c"},
    RR: {"G0", "G1a", "G1b", "G1c", "G-single", "lost update"},
    SER: {"G0", "G1a", "G1b", "G1c", "G-single", "lost update", "G2-item", "G2"},
}
HERMITAGE = [(a, lvl) for a in DERIVED_AS for lvl in (RU, RC, RR, SER)]


@pytest.mark.parametrize(("declared", "level"), [pytest.param(a, lvl, id=f"{a}[{lvl.short}]") for a, lvl in HERMITAGE])
def test_hermitage_derived_anomaly_agrees_with_the_declared_one(
    lab: Lab, catalogue: Catalogue, declared: str, level: Level
) -> None:
    scenario = next(s for s in catalogue.with_tag("hermitage") if s.anomaly and s.anomaly.name == declared)
    report = run(lab, scenario, level)
    names = derived(report)
    assert not FORBIDDEN[level] & set(names), f"{level.value} forbids {names}"
    if (declared, level) in FINDINGS:
        expected, why = FINDINGS[(declared, level)]
        assert names == expected, why
    elif report.verdict.anomaly_observed and DERIVED_AS[declared] is not None:
        assert names == (DERIVED_AS[declared],)
    else:
        assert names == (), f"{declared} did not happen at {level.value}, yet {names} was derived"
    for anomaly in report.analysis.anomalies:
        assert anomaly.weakest_violated.value in anomaly.explanation[-1]


def test_hermitage_g1c_cycle_is_write_skew_on_the_server_facts(lab: Lab, catalogue: Catalogue) -> None:
    """The finding in words: both transactions read the other's row before its write, both
    committed; each rw edge rests on a read that returned the row's key (observed)."""
    scenario = next(s for s in catalogue.with_tag("hermitage") if s.anomaly and s.anomaly.name == "G1c")
    report = run(lab, scenario, RC)
    (anomaly,) = report.analysis.anomalies
    assert sorted((e.kind, e.source, e.target, e.object, e.inferred) for e in anomaly.cycle) == [
        ("rw", "t1", "t2", "test[2]", False), ("rw", "t2", "t1", "test[1]", False),
    ]
    assert [t.outcome for t in report.analysis.history.transactions] == ["committed", "committed"]


# --- a user's scenario with no anomaly: section -------------------------------------------------

USER_SCENARIO = """\
name: on-call-rota
title: Two night nurses each check the rota and sign off
summary: Each sees the other on duty, so each leaves.
setup: |
  CREATE TABLE rota (nurse text PRIMARY KEY, on_duty boolean NOT NULL);
  INSERT INTO rota VALUES ('ines', true), ('omar', true);
sessions:
  ines: {}
  omar: {}
steps:
  - {name: ines_checks, session: ines, sql: "SELECT nurse, on_duty FROM rota WHERE nurse = 'omar'"}
  - {name: omar_checks, session: omar, sql: "SELECT nurse, on_duty FROM rota WHERE nurse = 'ines'"}
  - {name: ines_leaves, session: ines, sql: "UPDATE rota SET on_duty = false WHERE nurse = 'ines'"}
  - {name: omar_leaves, session: omar, sql: "UPDATE rota SET on_duty = false WHERE nurse = 'omar'"}
  - {name: ines_commit, session: ines, sql: COMMIT}
  - {name: omar_commit, session: omar, sql: COMMIT}
expect:
  ru, rc, rr: {}
  ser:
    errors: {omar_commit: "40001"}
"""


def test_user_scenario_without_an_anomaly_section_still_gets_its_cycle_explained(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "on-call-rota.yaml"
    path.write_text(USER_SCENARIO)
    scenario = load_scenario(path)
    assert scenario.anomaly is None
    report = run(lab, scenario, RR)
    assert derived(report) == ("G2-item",)
    words = "\n".join(report.analysis.anomalies[0].explanation)
    for said in ("ines", "omar", "ines_checks", "omar_leaves", "rota[omar].on_duty = t", "serializable"):
        assert said in words, words
    assert derived(run(lab, scenario, SER)) == ()


def test_no_history_recorded_means_no_analysis() -> None:
    timeline = Timeline(scenario="s", level=RC, sessions=("a",), permutation=(), server_version="18")
    assert analyse(timeline) is None


# --- the classifier on hand-built edges ------------------------------------------------------


def edge(source: str, target: str, kind: str, obj: str = "x[1]", predicate: bool = False) -> Edge:
    return Edge(source, target, kind, obj, f"{source} {kind} {target}", (), predicate=predicate)  # type: ignore[arg-type]


def history(*ids: str, reads: tuple[Read, ...] = (), versions: tuple[VersionRef, ...] = ()) -> History:
    return History(tuple(Transaction(i, i, (), "committed") for i in ids), versions, reads, ())


@pytest.mark.parametrize(("kinds", "expected"), [
    (("ww", "ww"), "G0"),
    (("ww", "wr"), "G1c"),
    (("wr", "wr", "wr"), "G1c"),
    (("wr", "rw"), "G-single"),
    (("rw", "rw"), "G2-item"),
    (("rw", "ww", "rw"), "G2-item"),
])
def test_item_cycles_are_named_by_their_edges(kinds: tuple[str, ...], expected: str) -> None:
    ids = [f"t{i}" for i in range(len(kinds))]
    cycle = tuple(edge(ids[i], ids[(i + 1) % len(ids)], k, f"x[{i}]") for i, k in enumerate(kinds))
    assert name(cycle, history(*ids)) == expected


def test_a_predicate_anti_dependency_makes_a_two_rw_cycle_g2() -> None:
    cycle = (edge("a", "b", "rw", "t", predicate=True), edge("b", "a", "rw", "x[2]"))
    assert name(cycle, history("a", "b")) == "G2"


def test_lost_update_needs_both_transactions_to_have_read_the_version_overwritten() -> None:
    v0 = VersionRef("x", ("1",), 0, ("1", "10"), None, None)
    read = lambda t: Read(t, f"{t}_read", 1, "x", ("id", "v"), ("1", "10"), (v0,), True)  # noqa: E731
    cycle = (edge("a", "b", "ww", "x[1]"), edge("b", "a", "rw", "x[1]"))
    assert name(cycle, history("a", "b", reads=(read("a"), read("b")))) == "lost update"
    assert name(cycle, history("a", "b", reads=(read("b"),))) == "G-single"


def test_one_anomaly_per_kind_per_component_the_shortest_and_never_a_rotation() -> None:
    edges = [edge("a", "b", "rw", "x[1]"), edge("b", "a", "wr", "x[2]"), edge("b", "c", "rw", "x[3]"),
             edge("c", "a", "wr", "x[4]"), edge("c", "b", "wr", "x[5]"), edge("d", "e", "ww"), edge("e", "d", "ww")]
    graph = nx.DiGraph()
    for e in edges:
        graph.add_edge(e.source, e.target, edges=[e])
    found = shortest_cycles(graph, history("a", "b", "c", "d", "e"))
    assert [(n, tuple(e.source for e in c)) for n, c in found] == [
        ("G-single", ("a", "b")), ("G2-item", ("a", "b", "c")), ("G0", ("d", "e")),
    ]


def test_a_read_of_another_transactions_intermediate_version_is_g1b() -> None:
    v1 = VersionRef("x", ("1",), 1, ("1", "101"), "a", "a_first", 1)
    v2 = VersionRef("x", ("1",), 2, ("1", "11"), "a", "a_second", 2)
    read = Read("b", "b_read", 5, "x", ("id", "v"), ("1", "101"), (v1,), True)
    wr = Edge("a", "b", "wr", "x[1]", "b read x[1].v = 101", ("a_first", "b_read"))
    assert intermediate_reads(history("a", "b", reads=(read,), versions=(v1, v2)), (wr,)) == [wr]


def test_analysis_is_what_every_run_report_carries(lab: Lab, catalogue: Catalogue) -> None:
    report = run(lab, scenario_named(catalogue, "hermitage-g2"), RC)
    assert isinstance(report.analysis, Analysis)
    assert derived(report) == ("G2",)
    assert all(e.predicate and e.inferred for e in report.analysis.anomalies[0].cycle)


EXPLICIT_BEGIN = """\
name: explicit-repeatable-read
title: A psql-style session opens its own REPEATABLE READ transaction
summary: Its second read still sees the row as it was when its snapshot was taken.
setup: |
  CREATE TABLE test (id int PRIMARY KEY, value int);
  INSERT INTO test VALUES (1, 10);
sessions:
  reader: {autocommit: true}
  writer: {}
steps:
  - {name: reader_begin, session: reader, sql: BEGIN ISOLATION LEVEL REPEATABLE READ}
  - {name: reader_first, session: reader, sql: SELECT value FROM test WHERE id = 1}
  - {name: writer_update, session: writer, sql: UPDATE test SET value = 11 WHERE id = 1}
  - {name: writer_commit, session: writer, sql: COMMIT}
  - {name: reader_again, session: reader, sql: SELECT value FROM test WHERE id = 1}
  - {name: reader_commit, session: reader, sql: COMMIT}
expect:
  all:
    rows: {reader_first: [[10]], reader_again: [[10]]}
"""


def test_a_transactions_own_isolation_level_decides_what_its_snapshot_saw(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "explicit-repeatable-read.yaml"
    path.write_text(EXPLICIT_BEGIN)
    report = run(lab, load_scenario(path), RC)
    again = next(r for r in report.analysis.history.reads if r.step == "reader_again")
    assert [(v.object, v.number, v.writer) for v in again.candidates] == [("test[1]", 0, None)]
    assert [(e.kind, e.source, e.target) for e in report.analysis.edges] == [("rw", "reader", "writer")] * 2
    assert derived(report) == ()


def test_a_deferrable_transaction_reads_the_safe_snapshot_it_waited_for(lab: Lab, catalogue: Catalogue) -> None:
    report = run(lab, scenario_named(catalogue, "read-only-anomaly-deferrable"), SER)
    assert report.timeline.was_blocked("report_read")
    seen = {r.values: [(v.object, v.writer) for v in r.candidates]
            for r in report.analysis.history.reads if r.step == "report_read"}
    assert seen == {("checking", "-11"): [("accounts[checking]", "withdraw")],
                    ("savings", "20"): [("accounts[savings]", "deposit")]}
    assert derived(report) == ()


def test_transactions_are_cut_where_the_connection_went_idle_and_own_their_writes_by_pid_and_text() -> None:
    def event(seq: int, session: str, sql: str, status: str | None, after: str, outcome: Outcome = Outcome.OK) -> Event:
        return Event(seq, session, f"s{seq}", sql, outcome, seq, seq + 0.5, status=status, transaction_status=after)

    events = [
        event(1, "a", "UPDATE t SET v = 1", "UPDATE 1", "idle"),  # autocommit: its own transaction
        event(2, "a", "BEGIN", "BEGIN", "in transaction"),
        event(3, "a", "SELECT 1/0", None, "in failed transaction", Outcome.ERROR),
        event(4, "a", "COMMIT", "ROLLBACK", "idle"),  # a failed transaction's COMMIT rolls back
        event(5, "b", "SELECT 1", "SELECT 1", "in transaction"),
    ]
    timeline = Timeline(scenario="s", level=RC, sessions=("a", "b"), permutation=(), server_version="18", events=events)
    writes = (
        LoggedWrite(1, 1, "700", "t", "UPDATE", ("1", "0"), ("1", "1"), 10, "UPDATE t SET v = 1"),
        LoggedWrite(2, 9, "701", "t", "UPDATE", ("1", "1"), ("1", "2"), 11, "UPDATE t SET v = 2"),
    )
    found = owners(timeline, HistoryCapture((), (), writes, (("a", 1), ("b", 2))))
    assert [(s.id, s.transaction.steps, s.transaction.outcome, s.transaction.xid) for s in found.spans] == [
        ("a", ("s1",), "committed", "700"), ("a#2", ("s2", "s3", "s4"), "aborted", None),
        ("b", ("s5",), "unfinished", None), ("pid 9", (), "committed", "701"),
    ]
    assert found.writes == {1: ("a", "s1"), 2: ("pid 9", None)}


def test_a_dense_graph_is_searched_per_edge_not_per_cycle() -> None:
    """Thirty transactions with every kind of edge between every two have more simple cycles
    than could ever be listed; Elle's searches still find the shortest of each kind."""
    ids = [f"t{i:02}" for i in range(30)]
    graph = nx.DiGraph()
    for a in ids:
        for b in ids:
            if a != b:
                graph.add_edge(a, b, edges=[edge(a, b, k, predicate=p) for k, p in
                                            (("ww", False), ("wr", False), ("rw", False), ("rw", True))])
    found = shortest_cycles(graph, history(*ids))
    assert [(n, len(c)) for n, c in found] == [("G0", 2), ("G1c", 2), ("G-single", 2), ("G2-item", 2), ("G2", 2)]
    assert all(c[0].source == "t00" for _, c in found)


@pytest.mark.parametrize("level", [RC, RR, SER])
def test_double_booking_in_a_table_without_a_key_is_a_predicate_cycle(
    lab: Lab, catalogue: Catalogue, level: Level
) -> None:
    """bookings has no primary key, so its rows are no objects; a read by condition still
    misses the other's INSERT, which the server says matches it."""
    report = run(lab, scenario_named(catalogue, "phantom-booking"), level)
    assert report.verdict.anomaly_observed is (level is not SER)
    assert derived(report) == (("G2",) if level is not SER else ())
    if level is not SER:
        assert "before bob's bookings row (orion, 2025-06-02 10:00:00, bob) (bob_book) changed its matches" in "\n".join(
            report.analysis.anomalies[0].explanation)


# --- the whole catalogue ------------------------------------------------------------------------

# Declared anomalies that are no cycle between transactions, and why.
NOT_A_CYCLE = {
    "threads-shared-connection": "two threads share one connection, hence one transaction: there is no second "
                                 "transaction to form a cycle with",
    "threads-shared-connection-error": "one thread's error aborts the one transaction both threads share",
}
CATALOGUE = Catalogue()
OTHERS = [(s, lvl) for s in CATALOGUE.scenarios.values()
          if not s.isolationtester and "hermitage" not in s.tags for lvl in s.levels]


@pytest.mark.parametrize(("scenario", "level"), [pytest.param(s, lvl, id=f"{s.name}[{lvl.short}]") for s, lvl in OTHERS])
def test_every_catalogue_run_gets_its_graph_and_a_cycle_exactly_where_its_anomaly_happens(
    lab: Lab, scenario: Scenario, level: Level
) -> None:
    report = run(lab, scenario, level)
    names = derived(report)
    assert not FORBIDDEN[level] & set(names), f"{level.value} forbids {names}"
    if report.verdict.anomaly_observed and scenario.name not in NOT_A_CYCLE:
        assert names, f"{scenario.anomaly.name} happened, yet no cycle was derived"
    elif not report.verdict.anomaly_observed:
        assert names == (), f"no anomaly happened, yet {names} was derived"


AMBIGUOUS = """\
name: twin-balances
title: Two accounts hold the same balance, and a read without the key cannot tell them apart
summary: The reader's row could be either account's, so no edge is drawn from it.
setup: |
  CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
  INSERT INTO accounts VALUES (1, 100), (2, 100);
sessions:
  reader: {}
  writer: {}
steps:
  - {name: reader_reads, session: reader, sql: SELECT balance FROM accounts WHERE balance = 100 LIMIT 1}
  - {name: writer_writes, session: writer, sql: UPDATE accounts SET balance = 0}
  - {name: writer_commit, session: writer, sql: COMMIT}
  - {name: reader_again, session: reader, sql: SELECT balance FROM accounts WHERE id = 2}
  - {name: reader_commit, session: reader, sql: COMMIT}
expect:
  all: {}
"""


def test_a_read_two_versions_could_answer_is_ambiguous_and_draws_no_edge(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "twin-balances.yaml"
    path.write_text(AMBIGUOUS)
    report = run(lab, load_scenario(path), RR)
    first = next(r for r in report.analysis.history.reads if r.step == "reader_reads")
    assert [(v.object, v.number) for v in first.candidates] == [("accounts[1]", 0), ("accounts[2]", 0)]
    assert first.version is None
    assert "ambiguous (equal values in several versions, so no edge): reader_reads (accounts)" \
        in caveat_lines(report.analysis)  # said from the reads, not repeated in History.gaps
    assert [e.steps for e in report.analysis.edges] == [("reader_again", "writer_writes")]
