"""SQLAlchemy 2's probes, the same code on each dialect: postgresql+psycopg2, +psycopg, +asyncpg.

For +asyncpg the engine comes from create_async_engine and the code runs inside
sqlalchemy.util.greenlet_spawn on the async engine's `sync_engine`: that is how every call
of AsyncConnection and AsyncSession runs (the sync core over asyncpg's adapter), so what
goes on the wire is what an async user's code sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import psycopg
import psycopg2
from sqlalchemy import Engine, Integer, create_engine, text
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.util import greenlet_spawn

from txnlab.drivers_table.bench import TRANSACTION_ISOLATION, Bench, connect_kwargs, outcome, refused
from txnlab.drivers_table.model import Cell

T = TypeVar("T")


class _Base(DeclarativeBase):
    pass


class Row(_Base):
    """The probe table `t` as an ORM class."""

    __tablename__ = "t"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


def on_engine(dialect: str, probe: Callable[[Bench, Engine], Cell]) -> Callable[[Bench], Cell]:
    """`probe` with a fresh engine of `dialect` (psycopg2, psycopg, asyncpg) whose first-connect
    queries are already done and forgotten; the engine disposed after."""
    def run(bench: Bench) -> Cell:
        if dialect == "asyncpg":
            return asyncio.run(_on_async_engine(bench, probe))
        connect = {"psycopg2": psycopg2.connect, "psycopg": psycopg.connect}[dialect]
        engine = create_engine(f"postgresql+{dialect}://", creator=lambda: connect(bench.dsn))
        try:
            return _warmed(bench, engine, probe)
        finally:
            engine.dispose()
    return run


async def _on_async_engine(bench: Bench, probe: Callable[[Bench, Engine], Cell]) -> Cell:
    engine = create_async_engine("postgresql+asyncpg://", connect_args=connect_kwargs(bench))
    try:
        return await greenlet_spawn(_warmed, bench, engine.sync_engine, probe)
    finally:
        await engine.dispose()


def _warmed(bench: Bench, engine: Engine, probe: Callable[[Bench, Engine], Cell]) -> Cell:
    engine.connect().close()  # the dialect's first-connect queries (version, schema...)
    bench.mark()
    return probe(bench, engine)


def first_statement(bench: Bench, engine: Engine) -> Cell:
    """Row first-statement: one INSERT on a new connection; the session's state after it."""
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        return Cell(bench.sent(), f"autobegin: server: {bench.states()}; in_transaction()={conn.in_transaction()}")


def with_block(bench: Bench, engine: Engine) -> Cell:
    """`with engine.connect() as conn:` without conn.commit()."""
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    return Cell(bench.sent(), f"committed: {bench.committed()}; after: {bench.states()} (pooled)")


def failed_statement(bench: Bench, engine: Engine) -> Cell:
    """Row failed-statement: a division by zero, another statement, then the recovery."""
    with engine.connect() as conn:
        results = [_try(conn, "SELECT 1/0"), _try(conn, "SELECT 1")]
        conn.rollback()
        results.append(_try(conn, "SELECT 1"))
        return Cell(bench.sent(), f"{results[0]}, then {results[1]}; after rollback(): {results[2]}")


def _try(conn, statement: str) -> str:  # type: ignore[no-untyped-def]
    try:
        conn.execute(text(statement))
    except Exception as exc:  # DBAPIError, or SQLAlchemy's own (PendingRollbackError)
        return outcome(exc)
    return "ok"


def savepoint(bench: Bench, engine: Engine) -> Cell:
    """Row savepoint: a nested unit of work inside a transaction, as this driver offers it."""
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        with conn.begin_nested():
            conn.execute(text("INSERT INTO t VALUES (2)"))
        conn.commit()
    return Cell(bench.sent(), f"begin_nested(), commit(): committed: {bench.committed()}")


def autocommit(bench: Bench, engine: Engine) -> Cell:
    """Row autocommit: the driver's autocommit switch, then an INSERT."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        return Cell(bench.sent(), f"server: {bench.states()}; committed: {bench.committed()}")


def isolation_level(bench: Bench, engine: Engine) -> Cell:
    """Row isolation-level: SERIALIZABLE the driver's way; the level the transaction runs at."""
    with engine.connect().execution_options(isolation_level="SERIALIZABLE") as conn:
        level = conn.execute(text(TRANSACTION_ISOLATION)).scalar()
        return Cell(bench.sent(), f"execution_options(): runs {level}")


def isolation_level_mid_transaction(bench: Bench, engine: Engine) -> Cell:
    """Row isolation-level-later: execution_options(isolation_level=) on a connection that autobegan."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        try:
            conn.execution_options(isolation_level="SERIALIZABLE")
            asked = "ok"
        except InvalidRequestError as exc:
            asked = refused(exc)
        this = conn.execute(text(TRANSACTION_ISOLATION)).scalar()
        conn.rollback()
        after = conn.execute(text(TRANSACTION_ISOLATION)).scalar()
        return Cell(bench.sent(), f"execution_options(): {asked}; this transaction: {this}, next: {after}")


def pool_return(bench: Bench, engine: Engine) -> Cell:
    """Row pool-return: a pooled connection returned in the middle of a transaction."""
    conn = engine.connect()
    conn.execute(text("INSERT INTO t VALUES (1)"))
    conn.close()
    return Cell(bench.sent(), f"close(): committed: {bench.committed()}; pooled: {bench.states()}")


def failed_flush(bench: Bench, engine: Engine) -> Cell:
    """A Session's flush fails (a duplicate key), then the session is used again."""
    bench.insert_committed(1)
    with Session(engine) as session:
        session.add(Row(id=1))
        results = [_try_session(session.flush), _try_session(lambda: session.execute(text("SELECT 1")))]
        before = bench.sent()
        session.rollback()
        by_rollback = bench.sent()  # the flush's failure already sent ROLLBACK: rollback() sends nothing
        results.append(_try_session(lambda: session.execute(text("SELECT 1"))))
        said = " · ".join(by_rollback) or "nothing"
        return Cell(before + by_rollback + bench.sent(),
                    f"flush: {results[0]}, then {results[1]}; rollback() sent {said}; then {results[2]}")


def _try_session(action: Callable[[], object]) -> str:
    try:
        action()
    except Exception as exc:  # IntegrityError, PendingRollbackError: what the user meets
        return outcome(exc) if type(exc).__name__ != "PendingRollbackError" else "PendingRollbackError"
    return "ok"


_PROBES: dict[str, Callable[[Bench, Engine], Cell]] = {
    "first-statement": first_statement,
    "with-block": with_block,
    "failed-statement": failed_statement,
    "savepoint": savepoint,
    "autocommit": autocommit,
    "isolation-level": isolation_level,
    "isolation-level-later": isolation_level_mid_transaction,
    "pool-return": pool_return,
    "failed-flush": failed_flush,
}


def probes(dialect: str) -> dict[str, Callable[[Bench], Cell]]:
    """The probes on one dialect (psycopg2, psycopg or asyncpg)."""
    return {key: on_engine(dialect, probe) for key, probe in _PROBES.items()}
