"""The command line as a user meets it: exit codes, one-line errors, stable JSON, and no
leftovers after a failure or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from conftest import leftovers
from terminal import terminal_stdin

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/postgres"

HANGING = """\
name: hanging
title: A step that sleeps
summary: Used to test Ctrl-C and timeouts.
sessions: {a: {}, b: {}}
steps:
  - {name: sleepy, session: a, sql: SELECT pg_sleep(30)}
  - {name: other, session: b, sql: SELECT 1}
expect: {all: {}}
"""


def scenario_file(tmp_path: Path, text: str, name: str = "scenario.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_run_exits_0_when_everything_is_as_expected(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", "atm-lost-update", "--level", "rc")
    assert code == 0
    assert "atm-lost-update at READ COMMITTED" in out
    assert "waits for atm1" in out
    assert "read committed: as expected" in out


def test_run_exits_1_and_says_what_differs_when_an_expectation_is_wrong(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = scenario_file(tmp_path, """\
        name: wrong
        title: A wrong expectation
        summary: Claims a read returns 2.
        sessions: {a: {}, b: {}}
        steps:
          - {name: read, session: a, sql: SELECT 1 AS one}
        expect: {all: {rows: {read: [[2]]}}}
    """)
    code, out, err = cli("run", path, "--level", "rc")
    assert code == 1, err
    assert "rows of read: expected [[2]], observed [[1]]" in out


def test_a_malformed_scenario_file_is_one_line_with_file_and_line_and_exit_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = scenario_file(tmp_path, HANGING.replace("session: b", "session: c"))
    code, out, err = cli("run", path)
    assert code == 2
    assert err.strip() == f"txnlab: error: {path}:7: step uses unknown session 'c'; sessions are: a, b"
    assert out == ""


def test_an_unknown_scenario_name_suggests_close_names_and_exits_2(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("show", "atm-lost-updat")
    assert code == 2
    assert "did you mean atm-lost-update" in err and "Traceback" not in err


def test_list_and_show_need_no_database(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TXNLAB_DSN", UNREACHABLE)
    code, out, _ = cli("list")
    assert code == 0 and "atm-lost-update" in out
    code, out, _ = cli("show", "atm-lost-update")
    assert code == 0 and "What PostgreSQL does:" in out and "repeatable read" in out


def test_an_unreachable_server_is_one_line_and_exit_3(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("run", "atm-lost-update", "--dsn", UNREACHABLE)
    assert code == 3
    assert err.startswith("txnlab: error: cannot connect to PostgreSQL") and err.count("\n") == 1


def test_a_malformed_dsn_is_one_line_and_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("run", "atm-lost-update", "--dsn", "not a dsn at all")
    assert code == 2
    assert err.startswith("txnlab: error: the DSN from --dsn is not valid: invalid dsn") and err.count("\n") == 1


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a hung server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_a_server_that_never_answers_fails_within_5_seconds(cli, silent_server: int) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    code, _, err = cli("run", "atm-lost-update", "--dsn", f"postgresql://x@127.0.0.1:{silent_server}/postgres")
    assert code == 3 and "cannot connect" in err
    assert time.monotonic() - started < 5


def test_a_role_that_cannot_create_databases_gets_one_clear_line(cli, role) -> None:  # type: ignore[no-untyped-def]
    dsn = role("txnlab_no_createdb", "NOCREATEDB")
    name = psycopg2.extensions.parse_dsn(dsn)["user"]
    code, _, err = cli("run", "atm-lost-update", "--dsn", dsn)
    assert code == 3
    assert f"role '{name}' may not create databases" in err
    assert f"ALTER ROLE {name} CREATEDB" in err


def test_a_scenario_needing_a_privilege_the_role_lacks_is_one_line_and_exit_3(cli, role) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("run", "deadlock", "--level", "rc", "--dsn", role("txnlab_limited", "CREATEDB NOSUPERUSER"))
    assert code == 3
    assert 'permission denied to set parameter "deadlock_timeout"' in err and err.count("\n") == 1


def test_matrix_json_is_a_versioned_list_with_scenario_level_and_verdict(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("matrix", "atm-lost-update", "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["schema_version"] == 2
    cells = document["verdicts"]
    assert [c["level"] for c in cells] == ["read uncommitted", "read committed", "repeatable read", "serializable"]
    assert all(c["scenario"] == "atm-lost-update" and c["matches_expectation"] is True for c in cells)
    assert [c["prevented"] for c in cells] == [False, False, True, True]
    assert [c["how"] for c in cells] == [None, None, "aborted", "aborted"]


def test_run_json_holds_the_timeline_events_and_the_verdict(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", "atm-lost-update", "--level", "rr", "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["schema_version"] == 2
    (run,) = document["runs"]
    blocked = [e for e in run["events"] if e["outcome"] == "blocked"]
    assert blocked[0]["step"] == "atm2_write" and blocked[0]["blocked_by"] == ["atm1"]
    failed = [e for e in run["events"] if e["error"]]
    assert failed[0]["error"]["sqlstate"] == "40001"
    assert failed[0]["error"]["exception"] == "psycopg2.errors.SerializationFailure"
    assert run["verdict"]["matches_expectation"] is True


def test_markdown_output_is_a_table_per_run(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", "atm-lost-update", "--level", "rc", "--format", "markdown")
    assert code == 0
    assert out.startswith("### atm-lost-update at READ COMMITTED")
    assert "| atm1 " in out and "waits for atm1" in out


def test_ctrl_c_mid_run_exits_130_and_leaves_no_sessions_or_scratch_database(
    tmp_path: Path, server_dsn: str, admin
) -> None:  # type: ignore[no-untyped-def]
    path = scenario_file(tmp_path, HANGING)
    env = {**os.environ, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "txnlab", "run", path, "--level", "rc", "--step-timeout", "60"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until the sleeping step is running on the server
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'")
            if cur.fetchone()[0]:
                break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the step never started")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=15)
    assert process.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert leftovers(admin, process.pid) == ([], [])


def test_myths_checks_the_blogs_claims_and_finds_them_false(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("myths", "--format", "json")
    document = json.loads(out)
    assert document["schema_version"] == 2
    claims = {c["scenario"]: c for c in document["claims"]}
    assert code == 0
    assert claims["dirty-read"]["true"] is False and claims["dirty-read"]["level"] == "read uncommitted"
    assert "report_read returned [[100]]" in claims["dirty-read"]["evidence"][0]
    assert claims["phantom-read"]["true"] is False
    assert claims["atm-lost-update"]["true"] is False


def test_step_mode_pauses_before_each_step_and_reveals_the_rooms_predictions(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # eight steps; after the sixth (atm1's COMMIT) the room also guesses how atm2's released UPDATE ends
    with terminal_stdin("b\n" * 6 + "o\n" + "b\n" * 2) as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        code, out, _ = cli("run", "atm-lost-update", "--level", "rc", "--step", "--predict")
    assert code == 0
    assert out.count("── step ") == 8 and "── step 5 of 8 · atm2 ──" in out
    assert "UPDATE accounts SET balance = '100'::integer - 30 WHERE id = 1" in out  # the SQL as it will be sent
    assert "The room said it blocks; it runs ok: wrong." in out
    assert "The room said it blocks; it blocks: right." in out
    flat = " ".join(out.split())  # the lock line wraps
    locked = "row lock, ShareLock on the transaction that locked the row at ctid (0,1) of accounts"
    assert f"lock: atm2 waits for atm1: {locked}" in flat
    assert "The room got 2 of 9 predictions right at read committed." in out


def test_the_room_may_answer_with_the_words_and_a_released_step_is_said_to_end_ok(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The README says the room predicts "run, block or fail": the words are answers too, in
    any case; a released step's guess is about how it ends, and the reveal says so."""
    answers = "ok\nOK\nok\nok\nBlock\nok\nok\nfail\nok\n"  # the 7th answer is atm2's released UPDATE
    with terminal_stdin(answers) as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        code, out, _ = cli("run", "atm-lost-update", "--level", "rc", "--step", "--predict")
    assert code == 0
    assert "The room said it blocks; it blocks: right." in out
    assert "The room said it ends ok; it ends ok: right." in out
    assert "The room got 8 of 9 predictions right at read committed." in out


def test_the_end_of_input_at_a_step_prompt_is_not_called_a_ctrl_c(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-D at the second prompt: no signal was sent (before: "interrupted by SIGINT (Ctrl-C)",
    glued to the end of the prompt's line)."""
    with terminal_stdin("\n\x04") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        code, _, err = cli("run", "atm-lost-update", "--level", "rc", "--step")
    assert code == 130
    assert err.endswith("\ntxnlab: stopped: the input ended (Ctrl-D) at a prompt; nothing was left behind\n")
    assert "SIGINT" not in err


def test_step_mode_shows_that_ssi_predicate_locks_block_nobody(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with terminal_stdin("\n" * 10) as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        code, out, _ = cli("run", "write-skew-doctors", "--level", "ser", "--step")
    assert code == 0
    assert "alice holds SIReadLock on doctors (SSI predicate locks: they block nobody)" in out
    assert "\x1b[" not in out  # NO_COLOR: plain text for pipes and projectors that need it


def test_the_demo_shows_the_lost_update_then_every_fix_at_every_level(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "180")  # wide enough for the matrix to keep whole names in its cells
    code, out, _ = cli("demo")
    assert code == 0
    assert "atm-lost-update at READ COMMITTED" in out
    assert "read committed: as expected — lost update happens" in out
    for fix in ("atm-atomic-update", "atm-select-for-update", "atm-retry-on-serialization-failure"):
        assert f"│ {fix}" in out


def test_server_url_gives_a_connection_string_psql_and_psycopg2_accept(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("server", "url")
    assert code == 0 and out.startswith("postgresql://postgres@/postgres?host=")
    psycopg2.connect(out.strip()).close()
    code, out, _ = cli("server", "status")
    assert code == 0 and "embedded server: running, PostgreSQL" in out
    assert "txnlab uses the server from TXNLAB_DSN" in out  # the cli fixture sets it


def test_a_python_scenario_whose_play_raises_is_one_line_and_exit_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "boom.py"
    path.write_text(textwrap.dedent("""
        SCENARIO = {"name": "boom", "title": "t", "summary": "s", "sessions": {"a": {}, "b": {}},
                    "expect": {"all": {}}}

        def play(run):
            run.result("nope").rows
    """))
    code, _, err = cli("run", str(path), "--level", "rc")
    assert code == 2
    assert err.strip() == f"txnlab: error: {path}:6: play() raised AttributeError: 'NoneType' object has no attribute 'rows'"


def test_a_report_that_cannot_be_written_is_one_line_and_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("report", "dirty-read", "--level", "rc", "-o", "/proc/nowhere/x.html")
    assert code == 2 and err.startswith("txnlab: error: cannot write /proc/nowhere/x.html")
