"""`txnlab drivers`, round 2: a cell shows what the driver sent for the behaviour, never the
probe's own clean-up, and states only what the tap and the server showed; the JSON carries
the schema_version every txnlab document carries.

Every assertion reads cells derived live on the real server (the wire tap's record).
"""

from __future__ import annotations

import json
import re
import threading

import psycopg2
import pytest

from txnlab.drivers_table import catalogue
from txnlab.drivers_table.bench import Bench, run_probes, two_threads
from txnlab.drivers_table.model import Behaviour, Driver, DriversTable
from txnlab.timeline import JSON_SCHEMA_VERSION

pytestmark = pytest.mark.database

# A statement that ends a transaction, as any of the drivers spells it (asyncpg adds ";").
TRANSACTION_END = re.compile(r"(COMMIT|ROLLBACK|END|ABORT);?", re.IGNORECASE)


@pytest.fixture(scope="module")
def table(server_dsn: str) -> DriversTable:
    return run_probes(server_dsn, catalogue.drivers(), catalogue.BEHAVIOURS, catalogue.probes())


def _applicable(table: DriversTable):  # type: ignore[no-untyped-def]
    for behaviour in table.behaviours:
        for driver in table.drivers:
            cell = table.cell(behaviour.key, driver.key)
            if cell.applies:
                yield behaviour, driver, cell


def test_no_cell_ends_with_the_transaction_end_its_probe_cleaned_up_with(table: DriversTable) -> None:
    """Where the end of the unit of work is not the lesson, a cell stops after the behaviour's
    last statement: the ROLLBACK or COMMIT that closing the probe's connection sent is teardown."""
    wrong = [
        f"{behaviour.key} on {driver.key}: sent {cell.sent}"
        for behaviour, driver, cell in _applicable(table)
        if not behaviour.shows_end and cell.sent and TRANSACTION_END.fullmatch(cell.sent[-1])
    ]
    assert not wrong, "cells ending in their probe's clean-up:\n" + "\n".join(wrong)
    assert all(cell.error is None for _, _, cell in _applicable(table))


def test_the_cleanup_the_tap_recorded_is_kept_as_teardown_not_dropped(table: DriversTable) -> None:
    """The clean-up is not lost: closing psycopg 3's and SQLAlchemy's connections after the
    first statement really sent a ROLLBACK, and the cell keeps it apart as `teardown`."""
    for driver in ("psycopg", "sqlalchemy+psycopg2", "sqlalchemy+psycopg", "sqlalchemy+asyncpg"):
        cell = table.cell("first-statement", driver)
        assert cell.sent[-1] == "INSERT INTO t VALUES (1)"
        assert len(cell.teardown) == 1 and TRANSACTION_END.fullmatch(cell.teardown[0]), (driver, cell)


def test_rows_whose_end_is_the_lesson_show_everything_the_driver_sent(table: DriversTable) -> None:
    """A `with` block's exit, commit() after savepoints, a pool's reset: the cell runs to the
    end, and nothing the driver sent is left out of it."""
    shown = [behaviour for behaviour in table.behaviours if behaviour.shows_end]
    assert {b.key for b in shown} == {"with-block", "with-block-autocommit", "savepoint", "pool-return"}
    left_out = [f"{b.key} on {d.key}: {cell.teardown}" for b, d, cell in _applicable(table)
                if b.shows_end and cell.teardown]
    assert not left_out


def test_json_teardown_is_separate_and_schema_version_is_txnlabs_one(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("drivers", "--format", "json")
    document = json.loads(out)
    assert code == 0 and err == ""
    assert document["schema_version"] == JSON_SCHEMA_VERSION == 2
    cell = next(b for b in document["behaviours"] if b["key"] == "failed-statement")["cells"]["psycopg"]
    assert cell["sent"][-1] == "SELECT 1" and cell["teardown"] == ["COMMIT"]  # `with psycopg.connect()` exit


def test_the_failed_flush_cell_says_which_call_sent_the_rollback(table: DriversTable) -> None:
    """SQLAlchemy rolls back when the flush fails; the user's rollback() then sends nothing.
    The cell says so from the tap's record, so a reader does not credit rollback() with it."""
    for dialect in ("psycopg2", "psycopg", "asyncpg"):
        cell = table.cell("failed-flush", f"sqlalchemy+{dialect}")
        assert "rollback() sent nothing" in cell.happened, cell
        assert TRANSACTION_END.fullmatch(cell.sent[2]), cell  # right after the failing INSERT


def test_two_threads_state_no_order_when_one_of_them_failed(server_dsn: str) -> None:
    """A statement that failed at once took no 0.2 s: the cell must not call the two
    'overlapping' from the time they took."""
    def probe(bench: Bench):  # type: ignore[no-untyped-def]
        conn = psycopg2.connect(bench.dsn)
        conn.autocommit = True
        calls = iter(["SELECT pg_sleep(0.2)", "SELECT 1/0"])
        lock = threading.Lock()

        def statement() -> None:
            with lock:
                sql = next(calls)
            conn.cursor().execute(sql)
        try:
            return two_threads(bench, statement)
        finally:
            conn.close()

    drivers = (Driver("psycopg2", "psycopg2", "psycopg2-binary", "x"),)
    result = run_probes(server_dsn, drivers, (Behaviour("b", "b"),), {("b", "psycopg2"): probe})
    assert result.cell("b", "psycopg2").happened == "22012"
