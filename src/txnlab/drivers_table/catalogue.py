"""The table's rows (behaviours) and columns (drivers), and which probe fills each cell."""

from __future__ import annotations

from txnlab.drivers_table import probes_asyncpg, probes_psycopg, probes_psycopg2, probes_sqlalchemy
from txnlab.drivers_table.bench import Probe
from txnlab.drivers_table.versions import installed
from txnlab.runner.drivers import driver
from txnlab.drivers_table.model import Behaviour, Driver

BEHAVIOURS = (
    Behaviour("first-statement", "first statement on a new connection"),
    Behaviour("with-block", "`with` block on the connection", shows_end=True),
    Behaviour("with-block-autocommit", "`with` block, autocommit on", shows_end=True),
    Behaviour("failed-statement", "a failed statement, then another"),
    Behaviour("savepoint", "savepoints / nested transactions", shows_end=True),
    Behaviour("autocommit", "autocommit"),
    Behaviour("isolation-level", "isolation level SERIALIZABLE"),
    Behaviour("isolation-level-later", "isolation level set inside a transaction"),
    Behaviour("pool-return", "return to the pool", shows_end=True),
    Behaviour("shared-connection", "one connection, two threads / tasks"),
    Behaviour("failed-flush", "ORM Session: failed flush, then another statement"),
)


def drivers() -> tuple[Driver, ...]:
    """The columns, each with the installed version of its package: a driver's as its sessions
    record it in timelines (runner.drivers), so that the table and the runs name the same version."""
    sqlalchemy = installed("SQLAlchemy")
    plain = (
        Driver("psycopg2", "psycopg2", "psycopg2-binary", driver("psycopg2").version),
        Driver("psycopg", "psycopg 3", "psycopg", driver("psycopg").version),
        Driver("asyncpg", "asyncpg", "asyncpg", driver("asyncpg").version),
    )
    on_sqlalchemy = tuple(
        Driver(f"sqlalchemy+{d.key}", "SQLAlchemy", "SQLAlchemy", sqlalchemy, f"postgresql+{d.key}", d) for d in plain
    )
    return plain + on_sqlalchemy


def probes() -> dict[tuple[str, str], Probe]:
    """Every probe by (behaviour key, driver key); a cell with none shows "—"."""
    by_driver: dict[str, dict[str, Probe]] = {
        "psycopg2": probes_psycopg2.PROBES,
        "psycopg": probes_psycopg.PROBES,
        "asyncpg": probes_asyncpg.PROBES,
        **{f"sqlalchemy+{d}": probes_sqlalchemy.probes(d) for d in ("psycopg2", "psycopg", "asyncpg")},
    }
    return {(behaviour, driver): probe for driver, table in by_driver.items() for behaviour, probe in table.items()}
