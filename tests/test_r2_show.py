"""`txnlab show` on a multi-driver Python scenario (the SQLAlchemy ones declare `drivers:`)
described its sessions as psycopg2 sessions; it names the drivers the scenario runs on,
or the one `--driver` picks, and refuses a driver the scenario does not declare (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

SAVEPOINT = str(Path(__file__).parents[1] / "scenarios" / "sqlalchemy" / "sqlalchemy-savepoint.py")


def sessions(shown: str) -> dict[str, str]:
    """Session name -> what `show` says of it, from its Sessions: section."""
    section = shown.split("\nSessions:\n", 1)[1].split("\n\n", 1)[0]
    return {line.strip().split(" ", 1)[0]: line.strip().split(" ", 1)[1] for line in section.splitlines()}


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")


def test_show_names_every_declared_driver_of_a_multi_driver_scenario(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("show", SAVEPOINT)
    assert code == 0
    assert sessions(out) == {
        "app": "(the run's driver, chosen with --driver: psycopg2 (default), psycopg 3 or asyncpg)",
        "observer": "(the run's driver, chosen with --driver: psycopg2 (default), psycopg 3 or asyncpg; autocommit)",
    }


@pytest.mark.parametrize("driver, app, observer", [
    ("asyncpg", "(asyncpg: conn.transaction() started before the first statement)",
     "(asyncpg, autocommit, statements as written)"),
    ("psycopg", "(psycopg 3 default: implicit transactions)", "(psycopg 3, autocommit, statements as written)"),
])
def test_show_driver_describes_the_sessions_through_the_chosen_driver(cli, driver: str, app: str, observer: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("show", SAVEPOINT, "--driver", driver)
    assert code == 0
    assert sessions(out) == {"app": app, "observer": observer}


def test_show_driver_of_a_sql_scenario_describes_it_through_that_driver(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("show", "dirty-read", "--driver", "psycopg")
    assert code == 0
    assert set(sessions(out).values()) <= {"(psycopg 3 default: implicit transactions)",
                                           "(psycopg 3, autocommit, statements as written)"}


def test_show_refuses_a_driver_the_scenario_does_not_declare_in_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    lesson = str(Path(__file__).parents[1] / "scenarios" / "psycopg" / "01-implicit-begin.py")
    code, out, err = cli("show", lesson, "--driver", "asyncpg")
    assert (code, out) == (2, "")
    assert err.startswith("txnlab: error: --driver asyncpg: psycopg-implicit-begin is not driver-neutral") and err.count("\n") == 1
