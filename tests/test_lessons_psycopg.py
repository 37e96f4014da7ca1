"""The psycopg 3 lessons (scenarios/psycopg/): what the catalogue run (which checks each at
every level) cannot show.

- A Python step run on another session's connection (`run.step(..., on=...)`, two threads
  sharing one connection) works for a psycopg 3 session, and what it sent is recorded for
  that step, from the connection it ran on, for psycopg2 and psycopg 3 alike.
- A lesson's `sent:` catches a driver that sends something else: psycopg 3's own
  client-side binding (ClientCursor, which sends `id = 1` as psycopg2 does) fails the
  implicit-begin lesson's expectations.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from txnlab.checks import check
from txnlab.levels import Level
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue

SHARED_CONNECTION = '''\
SCENARIO = {{
    "name": "shared-connection-on-the-wire",
    "title": "thread B commits on thread A's connection",
    "summary": "Thread B's step runs on thread A's connection; its COMMIT is B's step's.",
    "levels": ["rc"],
    "capture": True,
    "setup": "CREATE TABLE t (id int)",
    "sessions": {{"thread_a": {{"driver": "{driver}"}}, "thread_b": {{"driver": "{driver}"}}}},
    "steps": [
        {{"name": "a_insert", "session": "thread_a", "sql": "INSERT INTO t VALUES (1)"}},
        {{"name": "b_commit", "session": "thread_b", "sql": "conn.commit() on thread A's connection"}},
        {{"name": "a_count", "session": "thread_a", "sql": "SELECT count(*) FROM t"}},
    ],
    "expect": {{"rc": {{}}}},
}}


def play(run):
    run.step("a_insert")
    run.step("b_commit", lambda conn: conn.commit(), on=run.connection("thread_a"))
    run.step("a_count")
'''


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_a_step_on_another_sessions_connection_records_what_went_out_on_that_connection(
    cli, tmp_path: Path, driver: str  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path / "shared.py"
    path.write_text(SHARED_CONNECTION.format(driver=driver))
    code, out, err = cli("run", str(path), "--level", "rc", "--format", "json")
    assert code == 0, out + err
    events = {e["step"]: e for e in json.loads(out)["runs"][0]["events"]}
    assert events["b_commit"]["sent"] == ["COMMIT"]
    assert events["b_commit"]["server"][0]["state"] == "idle"
    assert events["a_count"]["sent"] == ["BEGIN ISOLATION LEVEL READ COMMITTED", "SELECT count(*) FROM t"]


def test_the_implicit_begin_lessons_sent_catches_client_side_binding(scratch_dsn: str) -> None:
    scenario = Catalogue().scenarios["psycopg-implicit-begin"]
    assert scenario.play is not None
    lesson = scenario.play

    def play_with_client_side_binding(run: Any) -> None:
        run.connection("app").cursor_factory = psycopg.ClientCursor  # merges the parameters itself
        lesson(run)

    lab = Lab(scratch_dsn, step_timeout=5.0)  # a lab of its own: the session's cursor factory goes with it
    try:
        timeline = lab.run(replace(scenario, play=play_with_client_side_binding), Level.READ_COMMITTED)
    finally:
        lab.close()
    missed = {f.subject: f.observed for f in check(scenario, timeline).findings if not f.ok}
    assert missed["sent for app_select"] == "BEGIN ISOLATION LEVEL READ COMMITTED | SELECT balance FROM accounts WHERE id = 1"
    assert "rows of dba_look" in missed
