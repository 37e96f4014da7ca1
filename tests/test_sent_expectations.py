"""`sent:` and `state:` expectations: a driver lesson asserts what the driver really put on
the wire for a step and the server's state of the session afterwards, both recorded by the
capture (never what we believe the driver sent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("plain_output")

IMPLICIT_BEGIN = """\
name: implicit-begin-on-the-wire
title: psycopg2 sends BEGIN before the first statement
summary: A SELECT in a psycopg2 session that is not autocommit is preceded by BEGIN.
levels: [rc]
capture: true
setup: CREATE TABLE t (id int)
sessions: {app: {}, dba: {autocommit: true}}
steps:
  - {name: app_select, session: app, sql: SELECT count(*) FROM t}
  - {name: dba_count, session: dba, sql: SELECT count(*) FROM t}
  - {name: app_commit, session: app, sql: COMMIT}
expect:
  rc:
    sent:
      app_select: [BEGIN ISOLATION LEVEL READ COMMITTED, SELECT count(*) FROM t]
      app_commit: [COMMIT]
    state: {app_select: idle in transaction, app_commit: idle}
"""


def scenario_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_the_messages_a_driver_sent_and_the_servers_state_are_checked(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", str(scenario_file(tmp_path, IMPLICIT_BEGIN)), "--level", "rc", "--format", "json")
    assert code == 0, out + err
    verdict = json.loads(out)["runs"][0]["verdict"]
    assert verdict["matches_expectation"] is True
    checked = {f["subject"]: f["observed"] for f in verdict["findings"]}
    assert checked["sent for app_select"] == "BEGIN ISOLATION LEVEL READ COMMITTED | SELECT count(*) FROM t"
    assert checked["server state after app_select"] == "idle in transaction"


def test_a_message_the_driver_did_not_send_is_a_mismatch_naming_what_it_sent(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wrong = IMPLICIT_BEGIN.replace("app_select: [BEGIN ISOLATION LEVEL READ COMMITTED, ", "app_select: [")
    code, out, _ = cli("run", str(scenario_file(tmp_path, wrong)), "--level", "rc")
    assert code == 1
    assert "sent for app_select" in out
    assert "BEGIN ISOLATION LEVEL READ COMMITTED | SELECT count(*) FROM t" in out


def test_a_wrong_server_state_is_a_mismatch(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wrong = IMPLICIT_BEGIN.replace("state: {app_select: idle in transaction", "state: {app_select: idle")
    code, out, _ = cli("run", str(scenario_file(tmp_path, wrong)), "--level", "rc")
    assert code == 1 and "server state after app_select" in out and "idle in transaction" in out


@pytest.mark.parametrize("key", ["sent", "state"])
def test_sent_or_state_without_capture_is_refused_in_one_line(cli, tmp_path: Path, key: str) -> None:  # type: ignore[no-untyped-def]
    text = IMPLICIT_BEGIN.replace("capture: true\n", "")
    code, _, err = cli("run", str(scenario_file(tmp_path, text)), "--level", "rc")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "needs 'capture: true'" in err


def test_sent_naming_an_unknown_step_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = IMPLICIT_BEGIN.replace("app_commit: [COMMIT]", "app_commmit: [COMMIT]")
    code, _, err = cli("run", str(scenario_file(tmp_path, text)), "--level", "rc")
    assert code == 2 and "unknown step 'app_commmit'" in err


def test_show_states_what_each_step_sends_and_the_servers_view(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("show", str(scenario_file(tmp_path, IMPLICIT_BEGIN)))
    assert code == 0
    out = " ".join(out.split())  # wrapped to the terminal's width
    assert "app_select sends: BEGIN ISOLATION LEVEL READ COMMITTED · SELECT count(*) FROM t" in out
    assert "the server shows app_select's session idle in transaction" in out


@pytest.mark.parametrize(("driver", "view"), [("psycopg2", "INTRANS"), ("psycopg", "INTRANS"),
                                              ("asyncpg", "is_in_transaction() = True")])
def test_a_capture_timeline_shows_the_drivers_own_view_beside_the_servers(
        cli, tmp_path: Path, driver: str, view: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", str(scenario_file(tmp_path, IMPLICIT_BEGIN)), "--level", "rc", "--driver", driver)
    assert code == (1 if driver == "asyncpg" else 0)  # asyncpg's BEGIN and COMMIT end with ';': not what `sent:` says
    assert f"driver: {view}" in out and "server: idle in transaction" in out
