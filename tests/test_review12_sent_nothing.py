"""A COMMIT or ROLLBACK step that its driver did not send (no transaction was open) is told
without naming a driver the session did not use: a psycopg 3 or asyncpg session's timeline
said "psycopg2 sent nothing"."""

from __future__ import annotations

import pytest
from scenario_text import scenario_from_yaml

from txnlab.levels import Level
from txnlab.render import text
from txnlab.runner.lab import Lab
from txnlab.workflow import run_cell


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg", "asyncpg"])
def test_a_commit_the_driver_did_not_send_is_told_without_naming_another_driver(lab: Lab, driver: str) -> None:
    scenario = scenario_from_yaml(f"""
        name: nothing-sent
        title: A COMMIT with no transaction open
        summary: the driver has no transaction to end and sends nothing.
        sessions: {{app: {{driver: {driver}}}, other: {{}}}}
        steps:
          - {{name: early_commit, session: app, sql: COMMIT}}
          - {{name: read, session: other, sql: SELECT 1}}
        expect: {{all: {{}}}}
    """)
    report = run_cell(lab, scenario, Level.READ_COMMITTED)
    (event,) = [e for e in report.timeline.events if e.step == "early_commit"]
    assert event.driver_sent_nothing
    shown = text.render_timeline(report, width=200)
    assert "→ ok: the driver sent nothing, no transaction was open" in shown
    others = {"psycopg2", "psycopg", "asyncpg"} - {driver}
    assert not any(f"{other} sent nothing" in shown for other in others)
