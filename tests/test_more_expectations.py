"""Issue 9, part 5: what else a scenario can assert (whom a step waited for, rows affected,
notices, an error's DETAIL), accepted alternative outcomes, and `txnlab run --repeat N`.

Each new key is checked passing and failing against the real server; a failing one is
exit 1 with a finding that says what differs, in every renderer. Scenarios whose outcome
truly varies (txid_current(), new on every run) prove the counting of distinct timelines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scenario_text import scenario_from_yaml
from test_cli import scenario_file
from txnlab.errors import ScenarioError
from txnlab.levels import Level

# Three sessions queue on one table: the writer waits for the lock that is held (s1's SHARE)
# and for the ACCESS EXCLUSIVE request queued ahead of it (s2's).
TABLE_QUEUE = """\
name: table-queue
title: A writer queued behind a held lock and a waiting one
summary: s1 holds SHARE, s2 waits for ACCESS EXCLUSIVE, s3's UPDATE waits for both.
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO t VALUES (1, 0);
sessions: {s1: {}, s2: {}, s3: {}}
steps:
  - {name: s1_index, session: s1, sql: CREATE INDEX ON t (v)}
  - {name: s2_alter, session: s2, sql: ALTER TABLE t ADD COLUMN note text}
  - {name: s3_update, session: s3, sql: UPDATE t SET v = 1 WHERE id = 1}
  - {name: s1_rollback, session: s1, sql: ROLLBACK}
  - {name: s2_commit, session: s2, sql: COMMIT}
  - {name: s3_commit, session: s3, sql: COMMIT}
expect:
  all:
    blocked: [s2_alter, s3_update]
    blocked_by: {s2_alter: [s1], s3_update: BLOCKERS}
"""

# A row lock queue: the third session waits for the second (its tuple lock), not the first.
ROW_QUEUE = """\
name: row-queue
title: Three sessions update one row
summary: >
  s1 updates the row, s2 and s3 queue for it; s1 rolls back, so s2, which holds the row's
  tuple lock, goes ahead on the same row version. (Were s1 to commit, at READ COMMITTED s2 would
  let go of the tuple lock to follow the row to its new version, and s3 could take it first: a
  race the server decides, under which the script would stall.)
setup: |
  CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO t VALUES (1, 0);
sessions: {s1: {}, s2: {}, s3: {}}
steps:
  - {name: s1_update, session: s1, sql: UPDATE t SET v = v + 1 WHERE id = 1}
  - {name: s2_update, session: s2, sql: UPDATE t SET v = v + 10 WHERE id = 1}
  - {name: s3_update, session: s3, sql: UPDATE t SET v = v + 100 WHERE id = 1}
  - {name: s1_rollback, session: s1, sql: ROLLBACK}
  - {name: s2_commit, session: s2, sql: COMMIT}
  - {name: s3_commit, session: s3, sql: COMMIT}
expect:
  all:
    blocked: [s2_update, s3_update]
    blocked_by: {s2_update: [s1], s3_update: BLOCKERS}
    rowcount: {s1_update: 1, s2_update: 1, s3_update: 1}
"""

ON_CONFLICT = """\
name: on-conflict
title: ON CONFLICT DO NOTHING after the other insert committed
summary: The second insert waits, then affects no row.
setup: CREATE TABLE signups (email text PRIMARY KEY)
sessions: {a: {}, b: {}}
steps:
  - {name: a_insert, session: a, sql: "INSERT INTO signups VALUES ('ann@example.com')"}
  - {name: b_insert, session: b, sql: "INSERT INTO signups VALUES ('ann@example.com') ON CONFLICT DO NOTHING"}
  - {name: a_commit, session: a, sql: COMMIT}
  - {name: b_commit, session: b, sql: COMMIT}
levels: [rc]
expect:
  rc:
    blocked: [b_insert]
    rowcount: {a_insert: 1, b_insert: COUNT}
"""

# A NOTICE (DROP ... IF EXISTS of nothing) and a WARNING (COMMIT with no transaction, as psql sends it).
NOTICES = """\
name: notices
title: A notice and a warning
summary: The server says something without failing.
sessions: {app: {}, psql: {autocommit: true}}
steps:
  - {name: app_drop, session: app, sql: DROP TABLE IF EXISTS nothing_here}
  - {name: psql_commit, session: psql, sql: COMMIT}
  - {name: app_select, session: app, sql: SELECT 1 AS one}
expect:
  all:
    notices: NOTICES
"""

# SSI's write skew: the second commit fails, and the DETAIL says why.
WRITE_SKEW = """\
name: write-skew
title: Two doctors go off call
summary: Each checks that the other is on call, then goes off.
setup: |
  CREATE TABLE doctors (name text PRIMARY KEY, on_call boolean NOT NULL);
  INSERT INTO doctors VALUES ('alice', true), ('bob', true);
sessions: {alice: {}, bob: {}}
steps:
  - {name: alice_check, session: alice, sql: SELECT count(*) AS n FROM doctors WHERE on_call}
  - {name: bob_check, session: bob, sql: SELECT count(*) AS n FROM doctors WHERE on_call}
  - {name: alice_off, session: alice, sql: "UPDATE doctors SET on_call = false WHERE name = 'alice'"}
  - {name: bob_off, session: bob, sql: "UPDATE doctors SET on_call = false WHERE name = 'bob'"}
  - {name: alice_commit, session: alice, sql: COMMIT}
  - {name: bob_commit, session: bob, sql: COMMIT}
levels: [ser]
expect:
  ser:
    errors: {bob_commit: ERROR}
"""

# txid_current() is new in every run: its parity is what the server decides, not the scenario.
PARITY = """\
name: parity
title: A value the scenario does not decide
summary: Whether this run's transaction id is even.
sessions: {a: {}, b: {}}
steps:
  - {name: a_xid, session: a, sql: "SELECT txid_current() % 2 = 0 AS even"}
  - {name: b_one, session: b, sql: SELECT 1 AS one}
levels: [rc]
expect:
  rc:
    rows: {a_xid: [[true]]}
    ALTERNATIVES
"""


def run_json(cli, path: str, *args: str) -> tuple[int, dict, str]:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", path, "--format", "json", *args)
    return code, json.loads(out), err


def findings(document: dict) -> list[dict]:
    return [f for run in document["runs"] for f in run["verdict"]["findings"]]


def failed(document: dict) -> list[str]:
    return [f"{f['subject']}: expected {f['expected']}, observed {f['observed']}" for f in findings(document) if not f["ok"]]


# -- blocked_by ---------------------------------------------------------------------------

def test_blocked_by_asserts_a_table_lock_queue_the_writer_waits_for_the_holder_and_the_queued_migration(
    cli, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    path = scenario_file(tmp_path, TABLE_QUEUE.replace("BLOCKERS", "[s2, s1]"))
    code, document, err = run_json(cli, path, "--level", "rc")
    assert (code, err) == (0, ""), failed(document)
    assert {"subject": "s3_update waited for", "expected": "s1, s2", "observed": "s1, s2", "ok": True} in findings(document)


def test_blocked_by_that_misses_a_session_in_the_queue_is_exit_1_naming_whom_the_step_waited_for(
    cli, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    path = scenario_file(tmp_path, TABLE_QUEUE.replace("BLOCKERS", "[s1]"))
    code, out, _ = cli("run", path, "--level", "rc")
    assert code == 1
    assert "s3_update waited for: expected s1, observed s1, s2" in out


def test_blocked_by_on_a_row_queue_shows_the_third_session_waits_for_the_second_not_the_first(
    cli, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    good = scenario_file(tmp_path, ROW_QUEUE.replace("BLOCKERS", "[s2]"), "good.yaml")
    assert cli("run", good, "--level", "rc")[0] == 0
    wrong = scenario_file(tmp_path, ROW_QUEUE.replace("BLOCKERS", "[s1]"), "wrong.yaml")
    code, out, _ = cli("run", wrong, "--level", "rc")
    assert code == 1 and "s3_update waited for: expected s1, observed s2" in out


# -- rowcount -----------------------------------------------------------------------------

def test_rowcount_0_is_what_on_conflict_do_nothing_reports_after_the_other_insert_commits(
    cli, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    code, document, _ = run_json(cli, scenario_file(tmp_path, ON_CONFLICT.replace("COUNT", "0")))
    assert code == 0, failed(document)
    assert {"subject": "rowcount of b_insert", "expected": "0", "observed": "0", "ok": True} in findings(document)


def test_a_wrong_rowcount_is_exit_1_with_the_count_the_server_reported(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", scenario_file(tmp_path, ON_CONFLICT.replace("COUNT", "1")))
    assert code == 1
    assert "rowcount of b_insert: expected 1, observed 0" in out


def test_a_rowcount_expected_of_a_step_that_reports_none_is_a_mismatch(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = ON_CONFLICT.replace("COUNT", "0").replace("a_insert: 1,", "a_insert: 1, a_commit: 0,")
    code, out, _ = cli("run", scenario_file(tmp_path, text))
    assert code == 1 and "rowcount of a_commit: expected 0, observed none: the server counted no rows for COMMIT" in out


AUTOCOMMIT_BEGIN = """\
    name: autocommit-begin
    title: BEGIN has no row count
    summary: psycopg2 reports -1 for a command without a count; the timeline says there is none.
    sessions: {a: {autocommit: true}, b: {}}
    steps:
      - {name: a_begin, session: a, sql: BEGIN}
      - {name: b_read, session: b, sql: SELECT 1}
      - {name: a_commit, session: a, sql: COMMIT}
    levels: [rc]
    expect: {rc: {}}
"""


def test_a_command_without_a_row_count_has_none_in_json_never_psycopg2s_minus_one(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, document, _ = run_json(cli, scenario_file(tmp_path, AUTOCOMMIT_BEGIN))
    assert code == 0
    events = {e["step"]: e for e in document["runs"][0]["events"]}
    assert (events["a_begin"]["rowcount"], events["a_begin"]["status"]) == (None, "BEGIN")
    assert (events["a_commit"]["rowcount"], events["a_commit"]["status"]) == (None, "COMMIT")
    assert events["b_read"]["rowcount"] == 1


# -- notices ------------------------------------------------------------------------------

def test_notices_and_warnings_match_by_contained_text_one_per_notice(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wanted = "{app_drop: ['table \"nothing_here\" does not exist, skipping'], psql_commit: ['WARNING: there is no transaction'], app_select: []}"
    code, document, _ = run_json(cli, scenario_file(tmp_path, NOTICES.replace("NOTICES", wanted)))
    assert code == 0, failed(document)


@pytest.mark.parametrize(
    ("wanted", "difference"),
    [
        ("{app_select: [anything]}", "notices of app_select: expected one containing 'anything', observed none"),
        ("{app_drop: []}", "notices of app_drop: expected none, observed 'NOTICE: table \"nothing_here\" does not exist, skipping'"),
        ("{psql_commit: [NOTICE]}", "notices of psql_commit: expected one containing 'NOTICE', observed 'WARNING: there is no transaction in progress'"),
        ("{app_drop: [skipping, skipping]}", "notices of app_drop: expected one containing 'skipping', one containing 'skipping'"),
    ],
)
def test_a_missing_or_unexpected_notice_is_exit_1_showing_the_notices_the_server_sent(
    cli, tmp_path: Path, wanted: str, difference: str  # type: ignore[no-untyped-def]
) -> None:
    code, out, _ = cli("run", scenario_file(tmp_path, NOTICES.replace("NOTICES", wanted)), "--level", "rc")
    assert code == 1
    assert difference in out


# -- an error's DETAIL --------------------------------------------------------------------

def test_an_error_detail_substring_matches_ssis_reason_and_the_short_sqlstate_form_stays_valid(
    cli, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    code, document, _ = run_json(cli, scenario_file(tmp_path, WRITE_SKEW.replace("ERROR", '{sqlstate: "40001", detail: pivot}')))
    assert code == 0, failed(document)
    finding = next(f for f in findings(document) if f["subject"] == "error detail of bob_commit")
    assert finding["ok"] and "Canceled on identification as a pivot" in finding["observed"]
    assert cli("run", scenario_file(tmp_path, WRITE_SKEW.replace("ERROR", "40001"), "short.yaml"))[0] == 0


def test_an_error_detail_that_is_not_in_the_servers_detail_is_exit_1_quoting_the_detail(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", scenario_file(tmp_path, WRITE_SKEW.replace("ERROR", '{sqlstate: "40001", detail: deadlock}')))
    assert code == 1
    assert "error detail of bob_commit: expected containing 'deadlock', observed 'Reason code: Canceled" in out


def test_an_error_detail_expected_of_a_step_that_succeeded_says_there_was_no_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = WRITE_SKEW.replace("ERROR", '{sqlstate: "40001", detail: pivot}, alice_commit: {sqlstate: "40001", detail: pivot}')
    code, out, _ = cli("run", scenario_file(tmp_path, text))
    assert code == 1 and "error detail of alice_commit: expected containing 'pivot', observed no error" in out


# -- alternatives -------------------------------------------------------------------------

def test_a_run_matching_an_accepted_alternative_is_as_expected_and_every_renderer_names_it(
    cli, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    both = "alternatives: [{name: odd, rows: {a_xid: [[false]]}, note: the transaction id was odd}]"
    path = scenario_file(tmp_path, PARITY.replace("ALTERNATIVES", both))
    code, document, _ = run_json(cli, path)
    assert code == 0
    (run,) = document["runs"]
    even = run["events"][0]["rows"] == [[True]]
    assert run["verdict"]["alternative"] == (None if even else "odd")
    assert run["verdict"]["matches_expectation"] is True
    # Text and Markdown say which one matched (the parity of a later run may differ: look at its row).
    for output_format in ("text", "markdown"):
        code, out, _ = cli("run", path, "--format", output_format)
        odd = re.search(r"\beven = f\b", out) is not None  # the server's text of false
        assert code == 0
        assert ("as expected (accepted alternative odd)" in out) == odd, out


def test_a_run_matching_no_alternative_is_exit_1_and_says_what_differs_from_each(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    none_fit = "alternatives: [{name: minus_one, rows: {a_xid: [[-1]]}}, {name: blocked, blocked: [b_one]}]"
    path = scenario_file(tmp_path, PARITY.replace("[[true]]", "[[42]]").replace("ALTERNATIVES", none_fit))
    code, out, _ = cli("run", path)
    assert code == 1
    assert "rows of a_xid: expected [[42]]" in out
    assert "accepted alternative minus_one differs too: rows of a_xid: expected [[-1]]" in out
    # the second alternative inherits rows [[42]] and states that b_one waits
    assert re.search(r"accepted alternative blocked differs too: blocked steps: expected b_one, observed none; "
                     r"rows of a_xid: expected \[\[42\]\]", " ".join(out.split())), out


def test_what_differs_from_the_expectation_and_each_alternative_is_in_the_html_and_markdown_handouts(
    cli, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    other = "    alternatives: [{name: other, blocked_by: {s3_update: [s2]}}]\n"
    path = scenario_file(tmp_path, TABLE_QUEUE.replace("BLOCKERS", "[s1]") + other)
    for suffix, underscore in (("html", "_"), ("md", "\\_")):
        output = tmp_path / f"handout.{suffix}"
        code, _, _ = cli("report", path, "--level", "rc", "-o", str(output))
        page = output.read_text()
        assert code == 1
        assert f"s3{underscore}update waited for: expected s1, observed s1, s2" in page
        assert f"accepted alternative other differs too: s3{underscore}update waited for: expected s2" in page


# -- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("key", "line", "message"),
    [
        ("blocked_by: {s3_update: [s1, nobody]}", 18, "blocked_by: 's3_update' waits for unknown session 'nobody'; sessions are: s1, s2, s3"),
        ("blocked_by: {s3_update: [s3]}", 18, "blocked_by: 's3_update' cannot wait for its own session 's3'"),
        ("blocked_by: {s1_rollback: [s2]}", 18, "blocked_by: 's1_rollback' is not in 'blocked:', the steps that wait"),
        ("blocked_by: {s3_update: []}", 18, "blocked_by: 's3_update' needs the sessions it waits for"),
        ("blocked_by: {nothing: [s1]}", 18, "expectation names unknown step 'nothing'"),
        ("rowcount: {s3_update: -1}", 18, "expect.all.rowcount.s3_update must be a whole number, 0 or more, not -1"),
        ("rowcount: {s3_update: '1'}", 18, "expect.all.rowcount.s3_update must be a whole number, 0 or more, not '1'"),
        ("notices: {s3_update: skipping}", 18, "expect.all.notices.s3_update must be a list, not text"),
        ("errors: {s3_update: {sqlstate: 4001}}", 18, "errors: '4001' is not a SQLSTATE"),
        ("errors: {s3_update: {sqlstate: '40001', detial: x}}", 18, "unknown key 'detial' in expect.all.errors.s3_update (did you mean 'detail'?)"),
        ("alternatives: [{blocked: [s2_alter]}]", 18, "expect.all.alternatives[0].name must be non-empty text"),
        ("alternatives: [{name: x}, {name: x}]", 18, "two alternatives are named 'x'"),
        ("alternatives: [{name: x, blocked_by: {s1_rollback: [s2]}}]", 18, "blocked_by: 's1_rollback' is not in 'blocked:'"),
        ("alternatives: [{name: x, alternatives: []}]", 18, "unknown key 'alternatives' in expect.all.alternatives[0]"),
    ],
)
def test_a_malformed_new_key_is_one_line_naming_file_line_and_problem(key: str, line: int, message: str) -> None:
    text = TABLE_QUEUE.replace("    blocked_by: {s2_alter: [s1], s3_update: BLOCKERS}\n", f"    {key}\n")
    with pytest.raises(ScenarioError) as raised:
        scenario_from_yaml(text, "queue.yaml")
    error = raised.value
    assert message in str(error) and str(error).startswith("queue.yaml:") and "\n" not in str(error), str(error)
    assert error.line == line, str(error)


def test_an_alternative_inherits_the_keys_it_does_not_give() -> None:
    text = TABLE_QUEUE.replace("BLOCKERS", "[s1, s2]") + "    alternatives: [{name: other, blocked_by: {s3_update: [s2]}}]\n"
    expectation = scenario_from_yaml(text).expectations[Level.READ_COMMITTED]
    (other,) = expectation.alternatives
    assert other.name == "other" and other.blocked == expectation.blocked == frozenset({"s2_alter", "s3_update"})
    assert other.blocked_by == {"s3_update": frozenset({"s2"})}  # replaced whole: s2_alter's entry is gone


# -- --repeat -----------------------------------------------------------------------------

def test_repeat_counts_distinct_timelines_when_each_run_differs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = PARITY.replace("% 2 = 0 AS even", "AS xid").replace("rows: {a_xid: [[true]]}", "blocked: []").replace("ALTERNATIVES", "")
    code, document, _ = run_json(cli, scenario_file(tmp_path, text), "--repeat", "4")
    assert code == 0
    xids = [run["events"][0]["rows"][0][0] for run in document["runs"]]
    assert len(xids) == 4 and len(set(xids)) == 4  # the server gave each run a new transaction id
    (summary,) = document["repeats"]
    assert (summary["runs"], summary["distinct_timelines"]) == (4, 4)
    assert [run["repeat"] for run in document["runs"]] == [1, 2, 3, 4]
    assert [run["timeline"] for run in document["runs"]] == [1, 2, 3, 4]
    assert summary["matched"] == {"the expectation": 4}


def test_repeat_compares_runs_whose_rows_hold_arrays_and_json(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = PARITY.replace('"SELECT txid_current() % 2 = 0 AS even"', """'SELECT ARRAY[1, 2] AS a, ''{"k": [1]}''::json AS j'""")
    text = text.replace("rows: {a_xid: [[true]]}", "blocked: []").replace("ALTERNATIVES", "")
    code, document, err = run_json(cli, scenario_file(tmp_path, text), "--repeat", "3")
    assert (code, err) == (0, "")
    assert document["runs"][0]["events"][0]["columns"] == ["a", "j"]
    assert document["repeats"][0]["distinct_timelines"] == 1


def test_repeat_shows_one_timeline_for_a_scenario_the_server_runs_the_same_way_every_time(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", "lock-queue-writers-wait-for-two", "--level", "rc", "--repeat", "3")
    assert code == 0
    assert out.count("lock-queue-writers-wait-for-two at READ COMMITTED") == 1  # shown once
    assert "timeline 1 of 1: 3 of 3 runs (1, 2, 3), matched the expectation" in out
    assert "lock-queue-writers-wait-for-two at read committed: 3 runs, 1 distinct timeline; 3 matched the expectation" in out


def test_repeat_says_which_alternative_each_run_matched_in_json_and_markdown(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = scenario_file(tmp_path, PARITY.replace("ALTERNATIVES", "alternatives: [{name: odd, rows: {a_xid: [[false]]}}]"))
    code, document, _ = run_json(cli, path, "--repeat", "6")
    assert code == 0
    parities = [run["events"][0]["rows"][0][0] for run in document["runs"]]
    assert [run["verdict"]["alternative"] for run in document["runs"]] == [None if p else "odd" for p in parities]
    (summary,) = document["repeats"]
    assert summary["distinct_timelines"] == len(set(parities))
    tally = {"the expectation": parities.count(True), "alternative odd": parities.count(False)}
    assert summary["matched"] == {k: v for k, v in tally.items() if v}
    code, out, _ = cli("run", path, "--repeat", "3", "--format", "markdown")
    assert code == 0 and "parity at read committed: 3 runs" in out and "timeline 1 of" in out


def test_repeat_exits_1_when_any_run_matches_neither_the_expectation_nor_an_alternative(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = scenario_file(tmp_path, PARITY.replace("ALTERNATIVES", ""))  # only an even transaction id is expected
    code, document, _ = run_json(cli, path, "--repeat", "6")
    parities = [run["events"][0]["rows"][0][0] for run in document["runs"]]
    assert code == (0 if all(parities) else 1)
    assert document["repeats"][0]["matched"].get("nothing", 0) == parities.count(False)
    never = scenario_file(tmp_path, PARITY.replace("[[true]]", "[[42]]").replace("ALTERNATIVES", ""), "never.yaml")
    code, out, _ = cli("run", never, "--repeat", "2")
    assert code == 1 and "2 matched nothing" in out


def test_repeat_is_refused_in_workshop_mode_and_must_be_at_least_1(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("run", "lock-queue", "--step", "--repeat", "2")
    assert code == 2 and "cannot --repeat" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("run", "lock-queue", "--repeat", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_repeat_counts_runs_whose_final_rows_differ_as_distinct_timelines(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The final rows are shown under each distinct timeline: runs whose `final:` rows differ
    (a new transaction id each run) are not one timeline shown with the first run's rows."""
    text = PARITY.replace("rows: {a_xid: [[true]]}", "blocked: []").replace("ALTERNATIVES", "")
    text = text.replace("levels: [rc]", "final: SELECT txid_current() AS xid\nlevels: [rc]")
    text = text.replace("SELECT txid_current() % 2 = 0 AS even", "SELECT 1 AS one")
    code, document, _ = run_json(cli, scenario_file(tmp_path, text), "--repeat", "3")
    assert code == 0
    xids = {run["final"][0]["rows"][0][0] for run in document["runs"]}
    assert len(xids) == 3
    assert document["repeats"][0]["distinct_timelines"] == 3


def test_repeat_never_captions_runs_that_matched_different_things_as_one_timeline(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Runs whose events look alike can still differ in what a `holds:` expectation read (an
    advisory lock keyed by the transaction id's parity): each timeline's caption says what
    all of its runs matched, so such runs are never grouped."""
    text = PARITY.replace("SELECT txid_current() % 2 = 0 AS even", "SELECT pg_advisory_xact_lock(txid_current() % 2)")
    text = text.replace("rows: {a_xid: [[true]]}", "holds: {a_xid: [ExclusiveLock on advisory key 0]}")
    code, document, _ = run_json(cli, scenario_file(tmp_path, text.replace("ALTERNATIVES", "")), "--repeat", "6")
    matched = [run["verdict"]["matches_expectation"] for run in document["runs"]]
    for timeline in document["repeats"][0]["timelines"]:
        assert len({matched[run - 1] for run in timeline["runs"]}) == 1, (timeline, matched)


def test_json_says_what_differs_from_each_alternative_as_text_and_markdown_do(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    none_fit = "alternatives: [{name: minus_one, rows: {a_xid: [[-1]]}}]"
    path = scenario_file(tmp_path, PARITY.replace("[[true]]", "[[42]]").replace("ALTERNATIVES", none_fit))
    code, document, _ = run_json(cli, path)
    assert code == 1
    (missed,) = document["runs"][0]["verdict"]["alternatives_missed"]
    assert missed["name"] == "minus_one"
    assert [(f["subject"], f["expected"], f["ok"]) for f in missed["findings"]] == [("rows of a_xid", "[[-1]]", False)]
    code, matrix, _ = cli("matrix", path, "--format", "json")
    (in_matrix,) = json.loads(matrix)["verdicts"][0]["alternatives_missed"]
    assert (in_matrix["name"], in_matrix["findings"][0]["expected"]) == ("minus_one", "[[-1]]")


def test_repeat_json_runs_carry_every_key_of_a_run_in_run_format_json(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`--repeat` builds its runs apart: they must not lose a key (`invariant_sql`) that
    `txnlab run --format json` prints."""
    text = PARITY.replace("rows: {a_xid: [[true]]}", "blocked: []").replace("ALTERNATIVES", "")
    text = text.replace("levels: [rc]", "invariants: {one: SELECT true}\nlevels: [rc]")
    path = scenario_file(tmp_path, text)
    _, once, _ = run_json(cli, path)
    _, repeated, _ = run_json(cli, path, "--repeat", "2")
    assert set(repeated["runs"][0]) == set(once["runs"][0]) | {"repeat", "timeline"}
    assert repeated["runs"][0]["invariant_sql"] == {"one": "SELECT true"}


def test_show_says_every_fact_an_expectation_states_rowcount_notices_holds_and_detail() -> None:
    """`txnlab show` says what PostgreSQL does at each level from the expectation: the keys
    issue 9 added are part of it, not only blocked and errors."""
    from txnlab.cli.catalogue import describe

    scenario = scenario_from_yaml("""\
        name: facts
        title: Every fact an expectation states
        summary: rowcount, notices, holds and an error's DETAIL, as show says them.
        setup: CREATE TABLE t (id int PRIMARY KEY)
        sessions: {a: {}, b: {}}
        steps:
          - {name: a_ins, session: a, sql: INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING}
          - {name: a_lock, session: a, sql: SELECT pg_advisory_lock(42)}
          - {name: a_note, session: a, sql: "DO $$ BEGIN RAISE NOTICE 'hello'; END $$"}
          - {name: b_dup, session: b, sql: INSERT INTO t VALUES (1)}
        expect:
          all:
            rowcount: {a_ins: 1}
            holds: {a_lock: [ExclusiveLock on advisory key 42]}
            notices: {a_note: [hello]}
            blocked: [b_dup]
            errors: {b_dup: {sqlstate: "23505", detail: "already exists"}}
        """)
    shown = " ".join(describe(scenario, width=200).split())
    assert ("read committed: blocks: b_dup fails: b_dup (23505, DETAIL containing 'already exists') "
            "rows affected: a_ins 1 notices: a_note 'hello' "
            "locks held after a_lock: ExclusiveLock on advisory key 42") in shown, shown  # one fact a line
