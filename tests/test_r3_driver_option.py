"""`--driver` naming what a scenario already runs on runs it as written; a selection that
--driver thins says how many it left out and why, and one it empties is bad input (exit 2)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("plain_output")


def test_a_psycopg2_python_scenario_runs_with_driver_psycopg2_as_without(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", "atm-retry-on-serialization-failure", "--driver", "psycopg2", "--level", "rc",
                         "--format", "json")
    plain_code, plain_out, _ = cli("run", "atm-retry-on-serialization-failure", "--level", "rc", "--format", "json")
    assert (code, err) == (plain_code, "")
    assert json.loads(out)["runs"][0]["drivers"] == json.loads(plain_out)["runs"][0]["drivers"]


def test_an_asyncpg_lesson_runs_as_written_with_driver_asyncpg(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", "asyncpg-no-implicit-begin", "--driver", "asyncpg", "--level", "rc", "--format", "json")
    assert (code, err) == (0, "")
    drivers = {name: d["driver"] for name, d in json.loads(out)["runs"][0]["drivers"].items()}
    assert drivers == {"app": "asyncpg", "dba": "psycopg2", "migration": "psycopg2"}


def test_refusing_a_driver_names_only_the_drivers_the_lesson_is_written_for(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", "asyncpg-no-implicit-begin", "--driver", "psycopg2", "--level", "rc")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "is written for (asyncpg)" in err and "psycopg2)" not in err


def test_a_matrix_says_in_one_line_how_many_scenarios_driver_left_out(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("matrix", "--tag", "implicit-transaction", "--driver", "asyncpg", "--level", "rc")
    assert code == 0
    assert "asyncpg-no-implicit-begin" in out and "psycopg2-implicit-begin" not in out
    assert err == ("txnlab: --driver asyncpg leaves out 2 of the 3 scenarios tagged implicit-transaction: "
                   "not driver-neutral nor written for asyncpg (1 Python, 1 pinning a driver)\n")


def test_a_matrix_driver_leaves_empty_is_bad_input_naming_why(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("matrix", "--tag", "psycopg2", "--driver", "psycopg", "--level", "rc", "--format", "json")
    assert (code, out) == (2, "")
    assert err.startswith("txnlab: error: --driver psycopg runs none of the ")
    assert "scenarios tagged psycopg2: each is not driver-neutral nor written for psycopg (" in err
    assert err.count("\n") == 1
