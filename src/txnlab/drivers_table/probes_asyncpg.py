"""asyncpg's probes: the code an asyncpg user writes, per behaviour, each on its own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from txnlab.drivers_table.bench import TRANSACTION_ISOLATION, Bench, connect_kwargs, outcome, refused
from txnlab.drivers_table.model import Cell


def status(conn: asyncpg.Connection) -> str:
    """asyncpg's own view: is_in_transaction()."""
    return f"is_in_transaction()={conn.is_in_transaction()}"


def on_loop(probe: Callable[[Bench, asyncpg.Connection], Awaitable[Cell]]) -> Callable[[Bench], Cell]:
    """A probe of one connection, run to the end on a new event loop; the connection closed after."""
    def run(bench: Bench) -> Cell:
        async def main() -> Cell:
            conn = await asyncpg.connect(**connect_kwargs(bench))
            try:
                return await probe(bench, conn)
            finally:
                await conn.close()
        return asyncio.run(main())
    run.__doc__ = probe.__doc__
    return run


@on_loop
async def first_statement(bench: Bench, conn: asyncpg.Connection) -> Cell:
    """Row first-statement: one INSERT on a new connection; the session's state after it."""
    await conn.execute("INSERT INTO t VALUES (1)")
    return Cell(bench.sent(), f"server: {bench.states()}; driver: {status(conn)}; committed: {bench.committed()}")


@on_loop
async def failed_statement(bench: Bench, conn: asyncpg.Connection) -> Cell:
    """Row failed-statement: a division by zero, another statement, then the recovery."""
    results = [await _try(conn, "SELECT 1/0"), await _try(conn, "SELECT 1")]
    return Cell(bench.sent(), f"{results[0]}, then {results[1]} (driver: {status(conn)}); server: {bench.states()}")


async def _try(conn: asyncpg.Connection, statement: str) -> str:
    try:
        await conn.execute(statement)
    except asyncpg.PostgresError as exc:
        return outcome(exc)
    return "ok"


@on_loop
async def savepoint(bench: Bench, conn: asyncpg.Connection) -> Cell:
    """Row savepoint: a nested unit of work inside a transaction, as this driver offers it."""
    async with conn.transaction():
        await conn.execute("INSERT INTO t VALUES (1)")
        async with conn.transaction():
            await conn.execute("INSERT INTO t VALUES (2)")
    return Cell(bench.sent(), f"nested transaction(): committed: {bench.committed()}")


@on_loop
async def autocommit(bench: Bench, conn: asyncpg.Connection) -> Cell:
    """Row autocommit: the driver's autocommit switch, then an INSERT."""
    await conn.execute("INSERT INTO t VALUES (1)")
    return Cell(bench.sent(), f"always, no switch: server: {bench.states()}; committed: {bench.committed()}")


@on_loop
async def isolation_level(bench: Bench, conn: asyncpg.Connection) -> Cell:
    """Row isolation-level: SERIALIZABLE the driver's way; the level the transaction runs at."""
    async with conn.transaction(isolation="serializable"):
        level = await conn.fetchval(TRANSACTION_ISOLATION)
        return Cell(bench.sent(), f"transaction(isolation=): runs {level}")


@on_loop
async def isolation_level_mid_transaction(bench: Bench, conn: asyncpg.Connection) -> Cell:
    """Row isolation-level-later: a serializable transaction() nested in a default one."""
    async with conn.transaction():
        try:
            async with conn.transaction(isolation="serializable"):
                pass
            asked = "ok"
        except asyncpg.InterfaceError as exc:
            asked = refused(exc)
        level = await conn.fetchval(TRANSACTION_ISOLATION)
        return Cell(bench.sent(), f"nested transaction(isolation=): {asked}; this transaction: {level}")


@on_loop
async def shared(bench: Bench, conn: asyncpg.Connection) -> Cell:
    """Two tasks run a 0.2 s statement on one connection at once."""
    results = await asyncio.gather(
        *(conn.execute("SELECT pg_sleep(0.2)") for _ in range(2)), return_exceptions=True
    )
    said = [outcome(r) if isinstance(r, BaseException) else "ok" for r in results]
    return Cell(bench.sent(), f"first task: {said[0]}; second: {said[1]}")


def pool_return(bench: Bench) -> Cell:
    """A pooled connection released inside an open transaction()."""
    async def main() -> Cell:
        async with asyncpg.create_pool(min_size=1, max_size=1, **connect_kwargs(bench)) as pool:
            conn = await pool.acquire()
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("INSERT INTO t VALUES (1)")
            await pool.release(conn)
            return Cell(bench.sent(), f"release(): committed: {bench.committed()}; pooled: {bench.states()}")
    return asyncio.run(main())


PROBES = {
    "first-statement": first_statement,
    "failed-statement": failed_statement,
    "savepoint": savepoint,
    "autocommit": autocommit,
    "isolation-level": isolation_level,
    "isolation-level-later": isolation_level_mid_transaction,
    "pool-return": pool_return,
    "shared-connection": shared,
}
