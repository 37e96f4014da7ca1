"""The SQLAlchemy scenarios' engine on the run's driver: one lesson, three dialects.

Each SQLAlchemy scenario declares `"drivers": DRIVERS`, so `txnlab run NAME --driver
psycopg|asyncpg` runs it on another dialect (`run.driver` says which). Its steps are the
same synchronous SQLAlchemy code on every dialect:

- postgresql+psycopg2 and postgresql+psycopg: `create_engine(..., creator=)` with the
  driver's own `connect(run.dsn)`; a step runs on its session's thread.
- postgresql+asyncpg: `create_async_engine(...).sync_engine`, the engine every call of
  AsyncConnection and AsyncSession runs on (the sync core over SQLAlchemy's asyncpg
  adapter). A step runs inside `sqlalchemy.util.greenlet_spawn`, awaited on its session's
  event loop, so what goes on the wire is what an async user's code sends. asyncpg's
  connections belong to the event loop that opened them: every step that touches the
  engine runs on one session (one loop), as an async application runs on one loop.

Imported only when a scenario runs: loading the catalogue need not import SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DRIVERS = ["psycopg2", "psycopg", "asyncpg"]


def by_driver(expectation: dict[str, Any], **differences: dict[str, Any]) -> dict[str, Any]:
    """`expectation` (what happens on psycopg2) with an accepted alternative named after each
    driver where something differs: `differences[driver]` gives the keys whose values differ
    there, each replacing the expectation's, as an alternative's keys do. Found by running
    each dialect (tests/test_sqlalchemy_dialects.py checks that the alternative named after a
    driver is what a run on that driver matches, and that no other run matches it)."""
    return {**expectation, "alternatives": [{"name": driver, **keys} for driver, keys in differences.items()]}


def asyncpg_sent(sent: dict[str, list[str]], **changes: list[str]) -> dict[str, list[str]]:
    """`sent` as SQLAlchemy's asyncpg dialect puts it on the wire: asyncpg's own Transaction
    writes its BEGIN (with the level), COMMIT and ROLLBACK with a semicolon; `changes` replace
    whole steps (bound parameters, say)."""
    transaction_control = ("BEGIN", "COMMIT", "ROLLBACK")
    ended = {step: [m + ";" if m.startswith(transaction_control) and " TO SAVEPOINT " not in m else m
                    for m in messages] for step, messages in sent.items()}
    return {**ended, **changes}


class Dialect:
    """The engine of one run (`engine`), and `call` to run a declared step as SQLAlchemy code."""

    def __init__(self, run: Any, **options: Any) -> None:
        """`options` go to create_engine / create_async_engine (isolation_level, pool_size...)."""
        import sqlalchemy
        from sqlalchemy import event

        self.run = run
        self._opened: list[Any] = []  # asyncpg: the driver connections the engine opened
        if run.driver == "asyncpg":
            from sqlalchemy.ext.asyncio import create_async_engine

            from txnlab.runner.drivers.asyncpg import connect_arguments

            self.engine = create_async_engine(
                "postgresql+asyncpg://", connect_args=connect_arguments(run.dsn), **options
            ).sync_engine
            event.listen(self.engine, "connect", lambda dbapi, _record: self._opened.append(dbapi.driver_connection))
        else:
            connect = _connect_function(run.driver)
            self.engine = sqlalchemy.create_engine(
                f"postgresql+{run.driver}://", creator=lambda: connect(run.dsn), **options
            )

    def call(self, name: str, function: Callable[[], Any]) -> None:
        """Run the declared step `name` as `function()` (its return value is the step's result)."""
        if self.run.driver == "asyncpg":
            from sqlalchemy.util import greenlet_spawn

            self.run.step(name, lambda _own_conn: greenlet_spawn(function))
        else:
            self.run.step(name, lambda _own_conn: function())

    def close(self, *leftovers: Callable[[], Any]) -> None:
        """After run.finish(): close what the application still holds (`leftovers`, only when
        the run stopped early) and the engine's connections. asyncpg's can be closed only on
        their event loop, no longer running here: they are terminated instead."""
        if self.run.driver == "asyncpg":
            for conn in self._opened:
                if not conn.is_closed():
                    conn.terminate()
            return
        for leftover in leftovers:
            leftover()
        self.engine.dispose()


def _connect_function(driver: str) -> Callable[[str], Any]:
    if driver == "psycopg":
        import psycopg

        return psycopg.connect
    import psycopg2

    return psycopg2.connect
