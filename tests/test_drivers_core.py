"""Sessions on any driver: choosing one (`driver:`, `--driver`), which scenarios are
driver-neutral, and every driver-neutral catalogue scenario meeting its expectations, and
deriving the history its psycopg2 run derives, when its sessions speak psycopg 3 or asyncpg."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

import psycopg
import pytest

from scenario_text import scenario_from_yaml
from txnlab.errors import ScenarioError, ServerError, UsageError
from txnlab.levels import Level
from txnlab.render.derived import caveat_lines
from txnlab.render.describe import mismatch_lines
from txnlab.render.report import RunReport
from txnlab.render.text import render_timeline
from txnlab.runner.drivers import DRIVERS, NAMES, driver
from txnlab.runner.execute import error_info
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue
from txnlab.scenario.catalogue import load_scenario
from txnlab.scenario.spec_source import parse_spec
from txnlab.workflow import report

DOCS = Path(__file__).resolve().parents[1] / "docs"
CATALOGUE = Catalogue()  # loaded once: loading it per cell made collecting the suite take a minute
NEUTRAL = [name for name, scenario in CATALOGUE.scenarios.items() if scenario.not_driver_neutral is None]
CELLS = [
    pytest.param(driver, name, level, id=f"{driver}-{name}[{level.value}]")
    for driver in ("psycopg", "asyncpg")
    for name in NEUTRAL
    for level in CATALOGUE.scenarios[name].levels
]


HistorySummary = tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...]]
PSYCOPG2_HISTORIES: dict[tuple[str, Level], HistorySummary] = {}


def _history(run: RunReport) -> HistorySummary:
    """A run's derived anomalies (name, transactions around the cycle) and its gaps' lines."""
    assert run.analysis is not None, "the run recorded no history"
    anomalies = tuple(sorted((a.name, a.transactions) for a in run.analysis.anomalies))
    return anomalies, tuple(caveat_lines(run.analysis))


@pytest.mark.parametrize(("driver", "name", "level"), CELLS)
def test_every_driver_neutral_scenario_behaves_as_it_says_and_derives_psycopg2s_history_through_psycopg_3_and_asyncpg(
    lab: Lab, catalogue: Catalogue, driver: str, name: str, level: Level
) -> None:
    scenario = catalogue.scenarios[name].with_driver(driver)
    try:
        timeline = lab.run(scenario, level)
        if (name, level) not in PSYCOPG2_HISTORIES:
            PSYCOPG2_HISTORIES[name, level] = _history(report(catalogue.scenarios[name], lab.run(catalogue.scenarios[name], level)))
    except ServerError as exc:  # e.g. a role that may not SET deadlock_timeout on this server
        pytest.skip(str(exc))
    assert {d for d, _ in timeline.drivers.values()} == {driver}
    run = report(scenario, timeline)
    if not run.verdict.matches_expectation:
        pytest.fail("\n".join([*mismatch_lines(run.verdict), render_timeline(run, width=140)]), pytrace=False)
    assert _history(run) == PSYCOPG2_HISTORIES[name, level], "the history differs from psycopg2's run's"


def test_the_docs_list_exactly_the_driver_neutral_catalogue_scenarios() -> None:
    text = (DOCS / "scenario-format.md").read_text(encoding="utf-8")
    section = re.search(r"<!-- driver-neutral: begin -->\n(.*?)<!-- driver-neutral: end -->", text, re.S)
    assert section is not None, "docs/scenario-format.md lost its driver-neutral list"
    listed = re.findall(r"^- `([^`]+)`$", section.group(1), re.M)
    assert listed == sorted(NEUTRAL), "docs/scenario-format.md: the list of driver-neutral scenarios is stale"


def test_python_spec_and_pinned_scenarios_are_not_driver_neutral(catalogue: Catalogue) -> None:
    python = next(s for s in catalogue.scenarios.values() if s.play is not None and not s.drivers)
    assert python.not_driver_neutral == "a Python scenario runs only on the drivers it is written for (psycopg2)"
    spec = parse_spec('setup { CREATE TABLE t (i int); }\nsession s1\nstep a { SELECT 1; }\n', "x.spec")
    assert spec.not_driver_neutral == "a .spec scenario runs isolationtester's own libpq sessions"
    pinned = scenario_from_yaml(PINNED)
    assert pinned.not_driver_neutral == "its sessions pin their driver (new: psycopg)"


PINNED = """
    name: mixed-drivers
    title: One psycopg2 session and one psycopg 3 session
    summary: Sessions choose their driver.
    setup: CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0);
    sessions:
      old: {}
      new: {driver: psycopg}
    steps:
      - {name: old_update, session: old, sql: UPDATE t SET v = 1 WHERE id = 1}
      - {name: new_update, session: new, sql: UPDATE t SET v = 2 WHERE id = 1}
      - {name: old_commit, session: old, sql: COMMIT}
      - {name: new_commit, session: new, sql: COMMIT}
    expect:
      all:
        blocked: [new_update]
"""


def test_sessions_of_one_scenario_may_speak_through_different_drivers(lab: Lab) -> None:
    timeline = lab.run(scenario_from_yaml(PINNED), Level.READ_COMMITTED)
    assert timeline.drivers["old"][0] == "psycopg2" and timeline.drivers["new"] == ("psycopg", psycopg.__version__)
    statuses = {e.step: e.driver_status for e in timeline.events if e.after_wait or e.outcome.value == "ok"}
    assert statuses["old_update"] == "TRANSACTION_STATUS_INTRANS"
    assert statuses["new_update"] == "TransactionStatus.INTRANS"
    assert timeline.was_blocked("new_update")


def test_a_timeline_names_its_drivers_in_every_format_when_one_is_not_psycopg2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "mixed.yaml"
    path.write_text(textwrap.dedent(PINNED))
    code, out, err = cli("run", str(path), "--level", "rc", "--no-color")
    assert (code, err) == (0, "")
    assert f"drivers: psycopg2 {DRIVERS['psycopg2'].version} (old); psycopg {psycopg.__version__} (new)" in out
    code, out, _ = cli("run", str(path), "--level", "rc", "--format", "markdown")
    assert f"Drivers: psycopg2 {DRIVERS['psycopg2'].version} (old); psycopg {psycopg.__version__} (new)." in out
    code, out, _ = cli("run", "dirty-read", "--level", "rc", "--no-color")
    assert "drivers:" not in out  # all psycopg2: nothing to say


def test_the_transcript_tells_the_drivers_own_view_apart(lab: Lab, catalogue: Catalogue) -> None:
    scenario = catalogue.scenarios["dirty-read"]
    old = lab.run(scenario, Level.READ_COMMITTED)
    new = lab.run(scenario.with_driver("psycopg"), Level.READ_COMMITTED)
    assert old.transcript() != new.transcript()
    assert [e.transaction_status for e in old.events] == [e.transaction_status for e in new.events]


def test_run_driver_names_an_unknown_driver_in_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", "dirty-read", "--driver", "pg8000")
    assert (code, out) == (2, "")
    assert err == "txnlab: error: --driver pg8000: unknown driver; choose one of psycopg2, psycopg, asyncpg\n"


def test_run_driver_refuses_a_scenario_that_is_not_driver_neutral_in_one_line(cli, catalogue: Catalogue) -> None:  # type: ignore[no-untyped-def]
    python = next(name for name, s in catalogue.scenarios.items() if s.play is not None and not s.drivers)
    code, out, err = cli("run", python, "--driver", "psycopg")
    assert (code, out) == (2, "")
    assert err == (f"txnlab: error: --driver psycopg: {python} is not driver-neutral: "
                   "a Python scenario runs only on the drivers it is written for (psycopg2)\n")


def test_matrix_driver_runs_only_the_neutral_scenarios_of_a_tag(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("matrix", "--tag", "read-only", "--driver", "psycopg", "--level", "rc", "--format", "json")
    assert code == 0
    assert err == ("txnlab: --driver psycopg leaves out 1 of the 3 scenarios tagged read-only: "
                   "not driver-neutral nor written for psycopg (1 Python)\n")
    assert "read-only-anomaly" in out and "psycopg2-set-session-read-only" not in out


def test_a_session_naming_an_unknown_driver_is_refused_in_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(PINNED).replace("driver: psycopg", "driver: psycopg4"))
    code, out, err = cli("run", str(path))
    assert (code, out) == (2, "")
    assert err == (f"txnlab: error: {path}:8: session 'new' names unknown driver 'psycopg4'; "
                   "did you mean psycopg? drivers are: psycopg2, psycopg, asyncpg\n")
    with pytest.raises(ScenarioError):
        scenario_from_yaml(textwrap.dedent(PINNED).replace("driver: psycopg", "driver: 3"))


def test_the_driver_registry_lists_the_drivers_in_order_and_refuses_others() -> None:
    assert NAMES == ("psycopg2", "psycopg", "asyncpg") == tuple(DRIVERS)
    assert driver("psycopg").name == "psycopg" and driver("psycopg2").name == "psycopg2"
    with pytest.raises(UsageError, match="^unknown driver 'pg8000': choose one of psycopg2, psycopg, asyncpg$"):
        driver("pg8000")
    assert "pg8000" not in DRIVERS and "asyncpg" in DRIVERS


PYTHON_SCENARIO = '''
SCENARIO = {
    "name": "python-on-psycopg",
    "title": "A Python scenario whose session speaks psycopg 3",
    "summary": "Its step functions get the driver's own connection.",
    "setup": "CREATE TABLE t (id int PRIMARY KEY)",
    "sessions": {"app": {"driver": "psycopg"}, "other": {}},
    "steps": [
        {"name": "app_insert", "session": "app", "sql": "conn.execute(INSERT ...); type of the connection"},
        {"name": "app_same", "session": "app", "sql": "run.connection is the step's connection"},
    ],
    "expect": {"all": {}},
}


def play(run):
    def insert(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        return f"{type(conn).__module__}.{type(conn).__name__}"

    run.step("app_insert", insert)
    own = run.connection("app")
    run.step("app_same", lambda conn: conn is own)
'''


def test_a_python_scenario_session_hands_its_steps_the_drivers_own_connection(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "python_on_psycopg.py"
    path.write_text(PYTHON_SCENARIO)
    scenario = load_scenario(path)
    assert scenario.session("app").driver == "psycopg" and scenario.session("app").driver_pinned
    timeline = lab.run(scenario, Level.READ_COMMITTED)
    events = {e.step: e for e in timeline.events}
    assert events["app_insert"].rows == (("psycopg.Connection",),)
    assert events["app_insert"].transaction_status == "in transaction"  # psycopg 3 began implicitly
    assert events["app_insert"].driver_status == "TransactionStatus.INTRANS"
    assert events["app_same"].rows == ((True,),)


def test_error_info_finds_an_asyncpg_error_behind_a_wrapper(scratch_dsn: str) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    params = psycopg.conninfo.conninfo_to_dict(scratch_dsn)

    async def fail() -> BaseException:
        conn = await asyncpg.connect(**{k: v for k, v in params.items() if k in ("host", "port", "user", "password")},
                                     database=params.get("dbname"))
        try:
            await conn.execute("SELECT * FROM no_such_table")
        except asyncpg.PostgresError as exc:
            return exc
        finally:
            await conn.close()
        raise AssertionError("the server accepted a query of a table that does not exist")

    error = asyncio.run(fail())
    wrapper = RuntimeError("wrapped")
    wrapper.orig = error  # type: ignore[attr-defined]
    info = error_info(wrapper)
    assert (info.exception, info.sqlstate, info.message) == (
        "builtins.RuntimeError", "42P01", 'relation "no_such_table" does not exist'
    )
