"""Round 2 CLI fixes for issue 12: an unknown driver name, wherever a user can write one
(`--driver` of run and matrix, `driver:` of a session, `drivers:` of a Python scenario), is one
line on stderr that names the close match and the valid drivers, and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from txnlab.runner.drivers import NAMES

SQLALCHEMY = Path(__file__).parents[1] / "scenarios" / "sqlalchemy" / "sqlalchemy-savepoint.py"


@pytest.mark.parametrize("args", [
    ["run", "dirty-read", "--driver", "psycopg3"],
    ["matrix", "dirty-read", "--driver", "psycopg3"],
    ["run", str(SQLALCHEMY), "--driver", "psycopg3"],
])
def test_unknown_driver_option_names_the_close_match_and_the_drivers(cli, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"txnlab: error: --driver psycopg3: unknown driver; did you mean psycopg? choose one of {', '.join(NAMES)}"
    ]


def test_unknown_session_driver_in_a_scenario_file_names_the_close_match(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pinned.yaml"
    path.write_text(
        "name: pinned\ntitle: t\nsummary: s\nsessions:\n  a: {driver: asyncpq}\n  b: {}\n"
        "steps:\n  - {name: s1, session: a, sql: SELECT 1}\n"
    )
    code, _, err = cli("run", str(path))
    assert code == 2
    assert err.splitlines() == [
        f"txnlab: error: {path}:5: session 'a' names unknown driver 'asyncpq'; did you mean asyncpg? "
        f"drivers are: {', '.join(NAMES)}"
    ]


def test_unknown_scenario_name_hint_keeps_its_pointer_to_txnlab_list(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("run", "dirty-reed")
    assert code == 2
    assert err.splitlines() == [
        "txnlab: error: no scenario named 'dirty-reed'; did you mean dirty-read? `txnlab list` shows them all"
    ]
