"""Round 2 JSON fixes for issue 12, through the real CLI on the real server:

- an event's `sent` (and `server`) is null when the run recorded nothing (no `capture:`),
  never `[]`, which says "the driver sent nothing"; `[]` stays for a captured step that
  truly sent nothing (psycopg2's `commit()` with no transaction open);
- `txnlab matrix --format json` names the drivers each run spoke through, in the shape
  `txnlab run --format json` uses."""

from __future__ import annotations

import json
from pathlib import Path

SCENARIOS = Path(__file__).parents[1] / "scenarios"
PSYCOPG_LESSON = SCENARIOS / "psycopg" / "01-implicit-begin.py"

# Captured, with a COMMIT that psycopg2 does not send (no transaction is open).
CAPTURED = """\
name: captured-nothing-sent
title: t
summary: s
capture: true
sessions: {a: {}, b: {autocommit: true}}
steps:
  - {name: a_commit, session: a, sql: COMMIT}
  - {name: b_read, session: b, sql: SELECT 1 AS one}
expect: {all: {sent: {a_commit: [], b_read: [SELECT 1 AS one]}}}
"""


def test_an_uncaptured_run_says_sent_and_server_are_null_not_empty(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", "dirty-read", "--level", "rc", "--format", "json")
    assert code == 0
    events = json.loads(out)["runs"][0]["events"]
    assert events and all(e["sent"] is None and e["server"] is None for e in events)


def test_a_captured_step_that_sent_nothing_keeps_an_empty_list(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "captured.yaml"
    path.write_text(CAPTURED)
    code, out, _ = cli("run", str(path), "--level", "rc", "--format", "json")
    assert code == 0
    events = {e["step"]: e for e in json.loads(out)["runs"][0]["events"]}
    assert events["a_commit"]["sent"] == [] and events["a_commit"]["driver_sent_nothing"] is True
    assert events["b_read"]["sent"] == ["SELECT 1 AS one"]
    assert events["b_read"]["server"][0]["label"] == "this session"


def test_matrix_json_names_each_runs_drivers_as_run_json_does(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("matrix", str(PSYCOPG_LESSON), "--level", "rc", "--format", "json")
    assert code == 0
    [verdict] = json.loads(out)["verdicts"]
    code, out, _ = cli("run", str(PSYCOPG_LESSON), "--level", "rc", "--format", "json")
    assert code == 0
    [run] = json.loads(out)["runs"]
    assert verdict["drivers"] == run["drivers"]
    assert {d["driver"] for d in verdict["drivers"].values()} >= {"psycopg", "psycopg2"}
    assert all(d["version"] for d in verdict["drivers"].values())


def test_matrix_json_names_the_driver_that_driver_option_chose(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("matrix", "dirty-read", "--level", "rc", "--driver", "asyncpg", "--format", "json")
    assert code == 0
    [verdict] = json.loads(out)["verdicts"]
    assert verdict["drivers"] and {d["driver"] for d in verdict["drivers"].values()} == {"asyncpg"}
