"""What the catalogue run of the asyncpg lessons (scenarios/asyncpg/) cannot show by itself:
that their `sent:` expectations (and `--repeat`'s count of distinct timelines) survive
asyncpg's process-wide savepoint counter, and that they would catch a driver that sent
something else (another spelling of the same command).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from txnlab.checks import check
from txnlab.levels import Level
from txnlab.runner.lab import Lab
from txnlab.scenario.catalogue import load_scenario

LESSONS = Path(__file__).resolve().parents[1] / "scenarios" / "asyncpg"
NESTED = LESSONS / "03-nested-transactions.py"
SAVEPOINT_NAME = re.compile(r"__asyncpg_savepoint_[0-9a-f]+__")


def run_nested_lesson(lab: Lab) -> tuple[set[str], bool, list[tuple[object, ...]]]:
    """Run the nested-transactions lesson once: the savepoint names asyncpg sent, whether the
    run matched the lesson's expectation, and the run's transcript (what `--repeat` compares)."""
    scenario = load_scenario(NESTED)
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    names = {name for event in timeline.events for message in event.sent for name in SAVEPOINT_NAME.findall(message)}
    return names, check(scenario, timeline).matches_expectation, timeline.transcript()


def test_nested_transaction_lesson_matches_whatever_number_asyncpg_gives_its_savepoints(lab: Lab) -> None:
    first, first_matched, _ = run_nested_lesson(lab)
    second, second_matched, _ = run_nested_lesson(lab)
    assert len(first) == 2 and len(second) == 2, (first, second)
    assert first.isdisjoint(second), "asyncpg's counter is process-wide: a second run gets new numbers"
    assert first_matched and second_matched


def test_repeated_runs_differing_only_in_asyncpg_savepoint_numbers_are_one_timeline(lab: Lab) -> None:
    first, _, first_transcript = run_nested_lesson(lab)
    second, _, second_transcript = run_nested_lesson(lab)
    assert first.isdisjoint(second)
    assert first_transcript == second_transcript


@pytest.mark.parametrize(
    ("lesson", "asyncpg_sends", "another_driver_sends", "step"),
    [
        # psycopg2 and psycopg 3 send BEGIN and COMMIT without asyncpg's semicolon
        ("04-async-with-transaction.py", '"app_block_ok": ["BEGIN;", DEPOSIT, "COMMIT;"]',
         '"app_block_ok": ["BEGIN", DEPOSIT, "COMMIT"]', "app_block_ok"),
        # the SQL standard's ROLLBACK TO SAVEPOINT, as psycopg2 users write it; asyncpg leaves out SAVEPOINT
        ("03-nested-transactions.py", 'f"ROLLBACK TO {SAVEPOINT};"', 'f"ROLLBACK TO SAVEPOINT {SAVEPOINT};"',
         "atm_nested_fails"),
        # a pool that only rolls back (psycopg2's, psycopg_pool's) sends no reset query
        ("07-pool-release-reset.py", '"app_release": ["ROLLBACK", RESET_QUERY]', '"app_release": ["ROLLBACK"]',
         "app_release"),
        # a driver that let the second task's statement through would have sent it
        ("08-shared-connection-tasks.py", '"app_at_once": [SLEEP]', '"app_at_once": [SLEEP, SLEEP]',
         "app_at_once"),
    ],
)
def test_a_lessons_sent_expectation_catches_a_driver_that_sends_something_else(
    lab: Lab, tmp_path: Path, lesson: str, asyncpg_sends: str, another_driver_sends: str, step: str
) -> None:
    source = (LESSONS / lesson).read_text(encoding="utf-8")
    assert source.count(asyncpg_sends) == 1
    shutil.copy(LESSONS / "_asyncpg_app.py", tmp_path)
    altered = tmp_path / lesson
    altered.write_text(source.replace(asyncpg_sends, another_driver_sends), encoding="utf-8")
    scenario = load_scenario(altered)
    verdict = check(scenario, lab.run(scenario, Level.READ_COMMITTED))
    wrong = [f.subject for f in verdict.findings if not f.ok]
    assert wrong == [f"sent for {step}"]
