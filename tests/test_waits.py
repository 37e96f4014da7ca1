"""Every wait as it changes, and every lock in words (issue 9, part 3): a step's blocker is
read again whenever the run settles, a completion is never recorded before the error
that released it, and each renderer says what kind of lock a step waits for."""

from __future__ import annotations

import json

import pytest
from scenario_text import scenario_from_yaml
from test_html_report import Page, rect

from txnlab.checks import check
from txnlab.errors import ScenarioError, ServerError
from txnlab.levels import Level
from txnlab.render import html, markdown, text
from txnlab.render import json as json_render
from txnlab.render.describe import result_phrase
from txnlab.render.report import RunReport
from txnlab.runner.lab import Lab
from txnlab.timeline import JSON_SCHEMA_VERSION, Event, Outcome, Timeline

# The repro. Row 2 is stored first, so b's one-statement UPDATE meets it first:
# b waits for holder on row 2 (holding row 2's tuple lock), then a asks for row 2 and
# queues behind b. holder commits: b takes row 2 and now waits for a on row 1, and a now
# waits for b's transaction. a's short deadlock_timeout makes a the victim every time.
MULTI_ROW_DEADLOCK = """
name: multi-row-deadlock
title: A multi-row UPDATE deadlocks once the first blocker commits
summary: b's wait moves from holder to a, a's from b's place in the row's queue to b itself.
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO t VALUES (2, 0), (1, 0);
sessions:
  holder: {}
  a: {setup: "SET deadlock_timeout = '50ms'"}
  b: {setup: "SET deadlock_timeout = '10s'"}
steps:
  - {name: holder_lock, session: holder, sql: SELECT v FROM t WHERE id = 2 FOR UPDATE}
  - {name: a_lock1, session: a, sql: UPDATE t SET v = v + 1 WHERE id = 1}
  - {name: b_both, session: b, sql: "UPDATE t SET v = v + 10 WHERE id IN (1, 2)"}
  - {name: a_lock2, session: a, sql: UPDATE t SET v = v + 1 WHERE id = 2}
  - {name: holder_commit, session: holder, sql: COMMIT}
  - {name: a_rollback, session: a, sql: ROLLBACK}
  - {name: b_commit, session: b, sql: COMMIT}
expect:
  all:
    blocked: [a_lock2, b_both]
    errors: {a_lock2: 40P01}
"""


def _run(lab: Lab, yaml: str, level: Level = Level.READ_COMMITTED) -> Timeline:
    try:
        return lab.run(scenario_from_yaml(yaml), level)
    except ServerError as exc:  # a role that may not SET deadlock_timeout on this server
        pytest.skip(str(exc))


def _report(lab: Lab, yaml: str, level: Level = Level.READ_COMMITTED) -> RunReport:
    scenario = scenario_from_yaml(yaml)
    timeline = _run(lab, yaml, level)
    return RunReport(scenario, timeline, check(scenario, timeline))


def _waits(timeline: Timeline) -> list[tuple[str, tuple[str, ...], bool]]:
    return [(e.session, e.blocked_by, e.wait_changed) for e in timeline.events if e.outcome is Outcome.BLOCKED]


def _settled(timeline: Timeline, step: str) -> Event:
    event = timeline.final_event(step)
    assert event is not None
    return event


@pytest.fixture(scope="module")
def deadlock(lab: Lab) -> RunReport:
    return _report(lab, MULTI_ROW_DEADLOCK)


def test_a_wait_whose_blocker_changes_is_recorded_again_so_the_deadlock_shows_a_waiting_for_b_and_b_for_a(
    deadlock: RunReport,
) -> None:
    assert deadlock.verdict.matches_expectation, deadlock.verdict.mismatches
    assert _waits(deadlock.timeline) == [
        ("b", ("holder",), False),
        ("a", ("b",), False),  # queued behind b for row 2's tuple lock
        ("b", ("a",), True),  # holder committed: b took row 2 and now waits for a's row 1
        ("a", ("b",), True),  # a now waits for b's transaction itself
    ]
    first, changed = [e for e in deadlock.timeline.step_events("a_lock2") if e.outcome is Outcome.BLOCKED]
    assert (first.lock.locktype, changed.lock.locktype) == ("tuple", "transactionid")  # type: ignore[union-attr]
    commit = _settled(deadlock.timeline, "holder_commit")
    assert all(e.seq > commit.seq and e.ended >= commit.ended for e in (changed,))


def test_the_deadlock_victims_error_comes_before_the_completion_it_released_and_no_earlier_in_time(
    lab: Lab, deadlock: RunReport
) -> None:
    for timeline in [deadlock.timeline, *(_run(lab, MULTI_ROW_DEADLOCK) for _ in range(4))]:
        victim, released = _settled(timeline, "a_lock2"), _settled(timeline, "b_both")
        assert victim.error is not None and victim.error.sqlstate == "40P01"
        assert released.after_wait and released.error is None and released.rowcount == 2
        assert victim.seq < released.seq and victim.ended <= released.ended
        ended = [e.ended for e in timeline.events if e.outcome is not Outcome.BLOCKED]
        assert ended == sorted(ended), "completion times disagree with the order of events"


def test_every_renderer_shows_the_changed_waits_a_to_b_and_b_to_a(deadlock: RunReport) -> None:
    out = text.render_timeline(deadlock, width=180)
    assert "◷ now waits for a (row lock" in out and "◷ now waits for b (row lock" in out

    document = json.loads(json_render.render_runs([deadlock]))
    changes = [(e["session"], e["blocked_by"]) for e in document["runs"][0]["events"] if e["wait_changed"]]
    assert changes == [("b", ["a"]), ("a", ["b"])]
    assert document["schema_version"] == JSON_SCHEMA_VERSION

    md = markdown.render_timeline(deadlock)
    assert "*now waits for a (row lock, ShareLock on the transaction that locked the row at ctid (0,2) of t)*" in md
    assert "*now waits for b (row lock, ShareLock on the transaction that locked the row at ctid (0,1) of t)*" in md

    page = html.render_report([deadlock], "deadlock")
    assert "now waits for a (row lock, ShareLock on the transaction that locked the row at ctid (0,2) of t)" in page
    assert "now waits for b (row lock, ShareLock on the transaction that locked the row at ctid (0,1) of t)" in page
    changed = next(e for e in deadlock.timeline.events if e.wait_changed and e.session == "b")
    first = next(e for e in deadlock.timeline.events if e.outcome is Outcome.BLOCKED and e.session == "b")
    assert f'data-seq="{first.seq}" data-session="b" data-step="b_both" data-until="{changed.seq}"' in page
    parsed = Page(page)
    lanes: dict[str, list[tuple[float, float]]] = {}
    for bar in parsed.find("g", css="bar"):  # the wait's stretches follow one another
        lanes.setdefault(bar.attrs["data-session"], []).append(rect(bar, parsed))
    for extents in lanes.values():
        extents.sort()
        assert all(a[1] <= b[0] for a, b in zip(extents, extents[1:]))

    workshop = text.render_step_events(deadlock.timeline.events, width=400)
    locked = "row lock, ShareLock on the transaction that locked the row at ctid"
    assert f"lock: b now waits for a: {locked} (0,2) of t" in workshop
    assert f"lock: a now waits for b: {locked} (0,1) of t" in workshop


# The sessions b waits for are idle in transaction, not running a step: the server ends
# holder after 100 ms, so b takes row 2 and now waits for a, which it ends after 400 ms.
# Nothing arrives in between: txnlab sees the change while it waits for b to finish.
IDLE_BLOCKERS = """
name: idle-blockers
title: b's wait moves from one idle session to another
summary: A change of blocker while txnlab waits for a session.
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO t VALUES (2, 0), (1, 0);
sessions:
  holder: {setup: "SET idle_in_transaction_session_timeout = '100ms'"}
  a: {setup: "SET idle_in_transaction_session_timeout = '400ms'"}
  b: {}
steps:
  - {name: holder_lock, session: holder, sql: SELECT v FROM t WHERE id = 2 FOR UPDATE}
  - {name: a_lock1, session: a, sql: UPDATE t SET v = v + 1 WHERE id = 1}
  - {name: b_both, session: b, sql: "UPDATE t SET v = v + 10 WHERE id IN (1, 2)"}
  - {name: b_commit, session: b, sql: COMMIT}
expect:
  all: {blocked: [b_both]}
"""


def test_a_wait_that_changes_while_txnlab_waits_for_the_session_is_recorded_when_it_happens(lab: Lab) -> None:
    report = _report(lab, IDLE_BLOCKERS)
    assert report.verdict.matches_expectation, report.verdict.mismatches
    events = report.timeline.step_events("b_both")
    assert [(e.outcome, e.blocked_by, e.wait_changed) for e in events] == [
        (Outcome.BLOCKED, ("holder",), False),
        (Outcome.BLOCKED, ("a",), True),
        (Outcome.OK, ("a",), False),
    ]
    first, changed, done = events
    assert 0.1 <= changed.ended < done.ended  # seen after holder's timeout, before a's ended the wait
    assert done.rowcount == 2


# Three sessions on one row: b waits for a's transaction, c (a DELETE) queues for the row's
# tuple lock behind b; when a rolls back, b goes on and c now waits for b's transaction.
ROW_QUEUE = """
name: row-queue
title: Three sessions queue for one row
summary: A row wait, and a wait in the row's queue.
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO t VALUES (1, 0), (2, 0);
sessions: {a: {}, b: {}, c: {}}
steps:
  - {name: a_update, session: a, sql: UPDATE t SET v = 1 WHERE id = 1}
  - {name: b_update, session: b, sql: UPDATE t SET v = 2 WHERE id = 1}
  - {name: c_delete, session: c, sql: DELETE FROM t WHERE id = 1}
  - {name: a_rollback, session: a, sql: ROLLBACK}
  - {name: b_rollback, session: b, sql: ROLLBACK}
  - {name: c_rollback, session: c, sql: ROLLBACK}
expect:
  all: {blocked: [b_update, c_delete]}
"""

# A table lock, advisory locks (a bigint key and a pair of int4 keys, negative ones
# included), and locks on a materialized view, an index and a sequence.
OTHER_KINDS = """
name: lock-kinds
title: Waits for locks of every kind
summary: w waits for holder, each time for a lock of another kind.
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO t VALUES (1, 0), (2, 0);
  CREATE MATERIALIZED VIEW mv AS SELECT id FROM t;
  CREATE SEQUENCE s;
sessions: {holder: {autocommit: true}, w: {autocommit: true}}
steps:
  - {name: h_begin1, session: holder, sql: BEGIN}
  - {name: h_table, session: holder, sql: LOCK TABLE t IN SHARE MODE}
  - {name: w_table, session: w, sql: UPDATE t SET v = 1 WHERE id = 1}
  - {name: h_commit1, session: holder, sql: COMMIT}
  - {name: h_advisory, session: holder, sql: SELECT pg_advisory_lock(-5000000000)}
  - {name: w_advisory, session: w, sql: SELECT pg_advisory_lock(-5000000000)}
  - {name: h_unlock, session: holder, sql: SELECT pg_advisory_unlock(-5000000000)}
  - {name: w_unlock, session: w, sql: SELECT pg_advisory_unlock(-5000000000)}
  - {name: h_begin2, session: holder, sql: BEGIN}
  - {name: h_pair, session: holder, sql: "SELECT pg_advisory_xact_lock(1, -2)"}
  - {name: w_pair, session: w, sql: "SELECT pg_advisory_xact_lock(1, -2)"}
  - {name: h_commit2, session: holder, sql: COMMIT}
  - {name: h_begin3, session: holder, sql: BEGIN}
  - {name: h_refresh, session: holder, sql: REFRESH MATERIALIZED VIEW mv}
  - {name: w_matview, session: w, sql: SELECT count(*) FROM mv}
  - {name: h_commit3, session: holder, sql: COMMIT}
  - {name: h_begin4, session: holder, sql: BEGIN}
  - {name: h_reindex, session: holder, sql: REINDEX INDEX t_pkey}
  - {name: w_index, session: w, sql: SELECT v FROM t WHERE id = 1}
  - {name: h_commit4, session: holder, sql: COMMIT}
  - {name: h_begin5, session: holder, sql: BEGIN}
  - {name: h_alter, session: holder, sql: ALTER SEQUENCE s RESTART}
  - {name: w_sequence, session: w, sql: "SELECT nextval('s')"}
  - {name: h_commit5, session: holder, sql: COMMIT}
expect:
  all: {blocked: [w_table, w_advisory, w_pair, w_matview, w_index, w_sequence]}
"""


def _wait_phrases(timeline: Timeline) -> list[tuple[str, str]]:
    return [(e.step, result_phrase(e)) for e in timeline.events if e.outcome is Outcome.BLOCKED]


def test_a_row_wait_says_row_lock_and_names_the_row_never_reading_as_a_table_lock(lab: Lab) -> None:
    report = _report(lab, ROW_QUEUE)
    assert report.verdict.matches_expectation, report.verdict.mismatches
    assert _wait_phrases(report.timeline) == [
        ("b_update", "waits for a (row lock, ShareLock on the transaction that locked the row at ctid (0,1) of t)"),
        # the "AccessExclusiveLock on accounts": a DELETE's place in the row's queue
        ("c_delete", "waits for b (row lock, AccessExclusiveLock on the row at ctid (0,1) of t)"),
        ("c_delete", "now waits for b (row lock, ShareLock on the transaction that locked the row at ctid (0,1) of t)"),
    ]
    event = next(e for e in report.timeline.events if e.step == "c_delete")
    assert text.wait_diagnosis(event) == (
        "c waits for b: row lock, AccessExclusiveLock on the row at ctid (0,1) of t "
        "(it queues for the row behind the session that is first in line for it)"
    )


def test_table_advisory_matview_index_and_sequence_waits_each_say_their_kind(lab: Lab) -> None:
    report = _report(lab, OTHER_KINDS)
    assert report.verdict.matches_expectation, report.verdict.mismatches
    assert _wait_phrases(report.timeline) == [
        ("w_table", "waits for holder (table lock, RowExclusiveLock on t)"),
        ("w_advisory", "waits for holder (advisory lock, ExclusiveLock on key -5000000000)"),
        ("w_pair", "waits for holder (advisory lock, ExclusiveLock on key (1, -2))"),
        ("w_matview", "waits for holder (materialized view lock, AccessShareLock on mv)"),
        ("w_index", "waits for holder (index lock, AccessShareLock on t_pkey)"),
        ("w_sequence", "waits for holder (sequence lock, RowExclusiveLock on s)"),
    ]


UNIQUE_KEY = """
name: unique-key-wait
title: A second INSERT of the same key waits for the first transaction
summary: The wait is for a transaction id, with no row lock.
setup: CREATE TABLE t (id int PRIMARY KEY);
sessions: {a: {}, b: {}}
steps:
  - {name: a_insert, session: a, sql: INSERT INTO t VALUES (5)}
  - {name: b_insert, session: b, sql: INSERT INTO t VALUES (5) ON CONFLICT DO NOTHING}
  - {name: a_commit, session: a, sql: COMMIT}
expect:
  all: {blocked: [b_insert]}
"""


def test_a_unique_key_wait_is_a_transaction_id_lock_not_a_row_lock(lab: Lab) -> None:
    report = _report(lab, UNIQUE_KEY)
    assert report.verdict.matches_expectation, report.verdict.mismatches
    [wait] = [e for e in report.timeline.events if e.outcome is Outcome.BLOCKED]
    assert result_phrase(wait) == "waits for a (transaction id lock, ShareLock on another transaction's id)"
    assert "the fate of a unique key it inserted" in (text.wait_diagnosis(wait) or "")


def test_each_renderer_says_row_table_and_advisory_in_words(lab: Lab) -> None:
    rows, others = _report(lab, ROW_QUEUE), _report(lab, OTHER_KINDS)
    row = "row lock, ShareLock on the transaction that locked the row at ctid (0,1) of t"
    table = "table lock, RowExclusiveLock on t"
    advisory = "advisory lock, ExclusiveLock on key -5000000000"

    flat = " ".join(text.render_runs([rows, others], width=180).replace("│", " ").split())
    workshop = text.render_step_events([*rows.timeline.events, *others.timeline.events], width=400)
    md = markdown.render_runs([rows, others])
    page = html.render_report([rows, others], "locks")
    for phrase in (row, table, advisory):
        assert phrase in workshop and phrase in md and phrase in page
    assert "table lock, RowExclusiveLock on t" in flat and "advisory lock, ExclusiveLock" in flat
    assert "(a lock on the whole table)" in workshop and "even past ROLLBACK" in workshop

    events = [e for run in json.loads(json_render.render_runs([rows, others]))["runs"] for e in run["events"]]
    locks = {e["step"]: e["lock"] for e in events if e["outcome"] == "blocked" and not e["wait_changed"]}
    assert (locks["b_update"]["locktype"], locks["b_update"]["relation"], locks["b_update"]["tuple"]) == (
        "transactionid", "t", 1,
    )
    assert (locks["w_table"]["locktype"], locks["w_table"]["relkind"]) == ("relation", "r")
    assert (locks["w_advisory"]["locktype"], locks["w_advisory"]["key"]) == ("advisory", "-5000000000")
    assert locks["w_pair"]["key"] == "(1, -2)" and locks["w_matview"]["relkind"] == "m"


# capture: true at SERIALIZABLE, with seq scans off so that the read goes through the index.
CAPTURED_KINDS = """
name: capture-kinds
title: The captured view shows every kind of lock the session holds
summary: Advisory locks of both levels, a materialized view, a sequence, an index and SSI's index page.
capture: true
levels: [ser]
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO t SELECT g, 0 FROM generate_series(1, 10) g;
  CREATE MATERIALIZED VIEW mv AS SELECT id FROM t;
  CREATE SEQUENCE s;
sessions:
  a: {setup: SET enable_seqscan = off}
  b: {}
steps:
  - {name: a_advisory, session: a, sql: "SELECT pg_advisory_lock(42), pg_advisory_xact_lock(1, -2)"}
  - {name: a_matview, session: a, sql: SELECT count(*) FROM mv}
  - {name: a_sequence, session: a, sql: "SELECT nextval('s')"}
  - {name: a_index, session: a, sql: SELECT v FROM t WHERE id = 3}
  - {name: a_rollback, session: a, sql: ROLLBACK}
  - {name: b_look, session: b, sql: SELECT 1}
  - {name: a_unlock, session: a, sql: SELECT pg_advisory_unlock(42)}
expect:
  all: {}
"""


def _own_view(timeline: Timeline, step: str) -> tuple[str, ...]:
    [view] = [v for v in _settled(timeline, step).server if v.label == "this session"]
    return view.locks


def _major(timeline: Timeline) -> int:
    """The server's major version, from its version string (e.g. "18.6", "15.15 (Debian ...)")."""
    return int(timeline.server_version.split(".")[0])


def test_the_capture_view_shows_advisory_matview_sequence_index_and_siread_index_page_locks(lab: Lab) -> None:
    timeline = _run(lab, CAPTURED_KINDS, Level.SERIALIZABLE)
    assert _own_view(timeline, "a_advisory") == (
        "ExclusiveLock on advisory key (1, -2)", "ExclusiveLock on advisory key 42",
    )
    # Materialized views take SIRead locks since PostgreSQL 16 (commit 43351557, "Make
    # materialized views participate in predicate locking"); before, they were exempt.
    matview_siread = ("SIReadLock on materialized view mv",) if _major(timeline) >= 16 else ()
    assert _own_view(timeline, "a_index") == (
        "AccessShareLock on index t_pkey",
        "AccessShareLock on materialized view mv",
        "AccessShareLock on t",
        "ExclusiveLock on advisory key (1, -2)",
        "ExclusiveLock on advisory key 42",
        "RowExclusiveLock on sequence s",
        "SIReadLock on index t_pkey (page)",  # SSI's lock on the index page the read went through
        *matview_siread,
        "SIReadLock on t (tuple)",
    )
    assert _own_view(timeline, "a_rollback") == ("ExclusiveLock on advisory key 42",)  # the session-level one
    assert _own_view(timeline, "b_look") == ()  # another session's locks are not this session's
    assert _own_view(timeline, "a_unlock") == ()


LEAKED = """
name: leaked-advisory-lock
title: A session-level advisory lock outlives the transaction
summary: holds asserts the locks a session holds right after a step.
sessions: {a: {}, b: {}}
steps:
  - {name: a_lock, session: a, sql: SELECT pg_advisory_lock(42)}
  - {name: a_rollback, session: a, sql: ROLLBACK}
  - {name: b_look, session: b, sql: SELECT 1}
  - {name: a_unlock, session: a, sql: SELECT pg_advisory_unlock(42)}
expect:
  all:
    holds:
      a_lock: [ExclusiveLock on advisory key 42]
      a_rollback: [HOLDS_AFTER_ROLLBACK]
      a_unlock: []
"""


def test_holds_passes_when_the_session_holds_exactly_those_locks_without_capture(lab: Lab) -> None:
    report = _report(lab, LEAKED.replace("[HOLDS_AFTER_ROLLBACK]", "[ExclusiveLock on advisory key 42]"))
    assert report.verdict.matches_expectation, report.verdict.mismatches
    findings = {f.subject: (f.expected, f.observed) for f in report.verdict.findings}
    assert findings["locks held after a_rollback"] == ("ExclusiveLock on advisory key 42",) * 2
    assert findings["locks held after a_unlock"] == ("none", "none")
    assert all(not e.server and not e.sent for e in report.timeline.events)  # no capture needed
    assert _settled(report.timeline, "b_look").holds is None  # read only where an expectation asks


def test_holds_fails_with_what_the_session_really_holds(lab: Lab) -> None:
    report = _report(lab, LEAKED.replace("[HOLDS_AFTER_ROLLBACK]", "[]"))
    assert not report.verdict.matches_expectation
    [finding] = report.verdict.mismatches
    assert (finding.subject, finding.expected, finding.observed) == (
        "locks held after a_rollback", "none", "ExclusiveLock on advisory key 42",
    )


def test_every_renderer_shows_the_locks_a_holds_expectation_read(lab: Lab) -> None:
    report = _report(lab, LEAKED.replace("[HOLDS_AFTER_ROLLBACK]", "[ExclusiveLock on advisory key 42]"))
    line = "locks held: ExclusiveLock on advisory key 42"
    assert line in text.render_timeline(report, width=180)
    assert line in markdown.render_timeline(report)
    assert line in html.render_report([report], "holds")
    assert line in text.render_step_events(report.timeline.events, width=400)
    assert "locks held: none" in text.render_step_events(report.timeline.events, width=400)
    events = json.loads(json_render.render_runs([report]))["runs"][0]["events"]
    assert [e["holds"] for e in events] == [
        ["ExclusiveLock on advisory key 42"], ["ExclusiveLock on advisory key 42"], None, [],
    ]


def test_a_holds_expectation_naming_an_unknown_step_is_one_line_with_its_line() -> None:
    with pytest.raises(ScenarioError) as raised:
        scenario_from_yaml(LEAKED.replace("a_rollback: [HOLDS_AFTER_ROLLBACK]", "a_rolback: []"))
    assert str(raised.value) == "inline.yaml:15: expectation names unknown step 'a_rolback'"


def test_the_advisory_lock_scenario_asserts_the_locks_held_at_every_level(lab: Lab, catalogue) -> None:  # type: ignore[no-untyped-def]
    scenario = catalogue.resolve("advisory-lock-survives-rollback")
    assert scenario.levels == tuple(Level)
    for level in Level:
        timeline = lab.run(scenario, level)
        verdict = check(scenario, timeline)
        assert verdict.matches_expectation, (level, verdict.mismatches)
        assert sum(f.subject.startswith("locks held after") for f in verdict.findings) == 9
        assert _settled(timeline, "w1_rollback").holds == ("ExclusiveLock on advisory key 42",)
