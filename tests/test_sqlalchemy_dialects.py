"""SQLAlchemy lessons on every dialect: each multi-driver catalogue scenario (a Python
scenario declaring `drivers:`) meets its expectations on every driver it declares, at every
level; an accepted alternative named after a driver is met on that driver only; and
`txnlab run --driver` accepts exactly the declared drivers."""

from __future__ import annotations

import pytest

from txnlab.checks import check
from txnlab.errors import ServerError
from txnlab.levels import Level
from txnlab.render.describe import mismatch_lines
from txnlab.render.report import RunReport
from txnlab.render.text import render_timeline
from txnlab.runner.drivers import DRIVERS
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue

MULTI_DRIVER = {name: s for name, s in Catalogue().scenarios.items() if s.drivers}
CELLS = [
    pytest.param(name, driver, level, id=f"{name}-{driver}[{level.value}]")
    for name, scenario in MULTI_DRIVER.items()
    for driver in scenario.drivers
    for level in scenario.levels
]


def test_every_sqlalchemy_lesson_is_multi_driver_on_all_three_dialects() -> None:
    sqlalchemy = {name for name, s in Catalogue().scenarios.items() if "sqlalchemy" in s.tags}
    assert len(sqlalchemy) == 5
    assert {name for name in sqlalchemy if MULTI_DRIVER.get(name)} == sqlalchemy
    assert {MULTI_DRIVER[name].drivers for name in sqlalchemy} == {("psycopg2", "psycopg", "asyncpg")}


@pytest.mark.parametrize(("name", "driver", "level"), CELLS)
def test_every_multi_driver_scenario_behaves_as_it_says_on_each_declared_driver(
    lab: Lab, name: str, driver: str, level: Level
) -> None:
    scenario = MULTI_DRIVER[name].with_driver(driver)
    try:
        timeline = lab.run(scenario, level)
    except ServerError as exc:  # e.g. a role that may not SET deadlock_timeout on this server
        pytest.skip(str(exc))
    unpinned = {s.name for s in scenario.sessions if not s.driver_pinned}
    assert {timeline.drivers[s][0] for s in unpinned} == {driver}
    verdict = check(scenario, timeline)
    if not verdict.matches_expectation:
        report = render_timeline(RunReport(scenario, timeline, verdict), width=140)
        pytest.fail("\n".join([*mismatch_lines(verdict), report]), pytrace=False)
    named_for_drivers = {a.name for a in scenario.expectations[level].alternatives} & set(DRIVERS)
    assert verdict.alternative == (driver if driver in named_for_drivers else None)


def test_run_driver_accepts_a_declared_driver_and_the_run_says_so(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", "sqlalchemy-session-begin", "--driver", "psycopg", "--level", "rc", "--no-color")
    assert (code, err) == (0, "")
    assert f"drivers: psycopg {DRIVERS['psycopg'].version} (app, observer)" in out


def test_run_driver_refuses_a_driver_a_python_scenario_does_not_declare_in_one_line(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "two-drivers.py"
    path.write_text(TWO_DRIVERS)
    code, out, err = cli("run", str(path), "--driver", "asyncpg", "--level", "rc")
    assert (code, out) == (2, "")
    assert err == ("txnlab: error: --driver asyncpg: two-drivers is not driver-neutral: "
                   "a Python scenario runs only on the drivers it declares (psycopg2, psycopg)\n")
    code, out, err = cli("run", str(path), "--driver", "psycopg", "--level", "rc", "--no-color")
    assert (code, err) == (0, "")
    assert "result = 'psycopg'" in out  # run.driver


def test_matrix_driver_runs_the_multi_driver_scenarios_that_declare_it(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("matrix", "--tag", "python", "--driver", "asyncpg", "--level", "rc", "--format", "json")
    assert code == 0 and err.startswith("txnlab: --driver asyncpg leaves out ") and err.count("\n") == 1
    assert "sqlalchemy-autobegin" in out and "psycopg2-with-connection" not in out


@pytest.mark.parametrize(("drivers", "message"), [
    ('["pg8000"]', "'drivers:' names unknown driver 'pg8000'; drivers are: psycopg2, psycopg, asyncpg"),
    ("[]", "'drivers:' lists no driver"),
])
def test_a_bad_drivers_list_is_refused_in_one_line(cli, tmp_path, drivers: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "two-drivers.py"
    path.write_text(TWO_DRIVERS.replace('["psycopg2", "psycopg"]', drivers))
    code, out, err = cli("run", str(path), "--level", "rc")
    assert (code, out) == (2, "")
    assert err.startswith("txnlab: error: ") and err.endswith(f"{message}\n") and err.count("\n") == 1


def test_a_sql_scenario_may_not_declare_drivers(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sql.yaml"
    path.write_text(SQL_WITH_DRIVERS)
    code, out, err = cli("run", str(path), "--level", "rc")
    assert (code, out) == (2, "")
    assert err.endswith("'drivers:' is for Python scenarios; a SQL scenario runs on any driver unless a "
                        "session pins 'driver:'\n") and err.count("\n") == 1


def test_a_multi_driver_scenario_runs_on_its_first_declared_driver_by_default(lab: Lab, tmp_path) -> None:
    from txnlab.scenario.catalogue import load_scenario

    path = tmp_path / "two-drivers.py"
    path.write_text(TWO_DRIVERS.replace('["psycopg2", "psycopg"]', '["psycopg", "psycopg2"]'))
    scenario = load_scenario(path)
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    assert timeline.drivers["a"][0] == "psycopg"
    assert timeline.events[0].rows == (("psycopg",),)


TWO_DRIVERS = '''
SCENARIO = {
    "name": "two-drivers",
    "title": "run.driver",
    "summary": "Returns the run's driver.",
    "drivers": ["psycopg2", "psycopg"],
    "sessions": {"a": {}, "b": {}},
    "steps": [{"name": "which", "session": "a", "sql": "return run.driver"}],
    "expect": {"all": {}},
}


def play(run):
    run.step("which", lambda conn: run.driver)
    run.finish()
'''

SQL_WITH_DRIVERS = """
name: sql-with-drivers
title: SQL scenarios are driver-neutral
summary: drivers is for Python scenarios.
drivers: [psycopg]
sessions: {a: {}, b: {}}
steps:
  - {session: a, sql: SELECT 1}
expect: {all: {}}
"""
