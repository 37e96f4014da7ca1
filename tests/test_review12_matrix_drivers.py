"""`txnlab matrix --driver` says which driver (and version) the runs spoke through: the grid
alone read exactly like psycopg2's, so a reader could not tell what had been checked."""

from __future__ import annotations

import pytest

from txnlab.runner.drivers import driver

pytestmark = pytest.mark.usefixtures("plain_output")


@pytest.mark.parametrize("name", ["psycopg", "asyncpg"])
def test_a_matrix_run_through_another_driver_names_it_and_its_version(cli, name: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("matrix", "dirty-read", "--driver", name, "--level", "rc")
    assert (code, err) == (0, "")
    assert f"{name} {driver(name).version}" in out


def test_a_psycopg2_matrix_leaves_the_default_driver_unsaid(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("matrix", "dirty-read", "--level", "rc")
    assert code == 0
    assert "drivers:" not in out
