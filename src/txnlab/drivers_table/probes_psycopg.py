"""psycopg 3's probes (and psycopg_pool's): the code a psycopg 3 user writes, per behaviour."""

from __future__ import annotations

import psycopg
import psycopg_pool

from txnlab.drivers_table.bench import TRANSACTION_ISOLATION, Bench, outcome, refused, two_threads
from txnlab.drivers_table.model import Cell


def status(conn: psycopg.Connection) -> str:
    """psycopg 3's view: the name of conn.info.transaction_status (IDLE, INTRANS, INERROR...)."""
    return conn.info.transaction_status.name


def first_statement(bench: Bench) -> Cell:
    """Row first-statement: one INSERT on a new connection; the session's state after it."""
    with psycopg.connect(bench.dsn) as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        cell = Cell(bench.sent(), f"server: {bench.states()}; driver: {status(conn)}")
        conn.rollback()
    return cell


def with_block(bench: Bench, autocommit: bool = False) -> Cell:
    """Row with-block: an INSERT inside the connection's `with` block; committed? closed?"""
    conn = psycopg.connect(bench.dsn, autocommit=autocommit)
    try:
        pid = conn.info.backend_pid
        with conn:
            conn.execute("INSERT INTO t VALUES (1)")
        session = bench.session_of(pid, closed=conn.closed)
        return Cell(bench.sent(), f"committed: {bench.committed()}; closed={conn.closed}, session {session}")
    finally:
        conn.close()


def with_block_autocommit(bench: Bench) -> Cell:
    """Row with-block-autocommit: with_block on an autocommit connection."""
    return with_block(bench, autocommit=True)


def failed_statement(bench: Bench) -> Cell:
    """Row failed-statement: a division by zero, another statement, then the recovery."""
    with psycopg.connect(bench.dsn) as conn:
        results = [_try(conn, "SELECT 1/0"), _try(conn, "SELECT 1")]
        driver = status(conn)
        conn.rollback()
        results.append(_try(conn, "SELECT 1"))
        return Cell(bench.sent(), f"{results[0]}, then {results[1]} (driver: {driver}); after rollback(): {results[2]}")


def _try(conn: psycopg.Connection, statement: str) -> str:
    try:
        conn.execute(statement)  # type: ignore[arg-type]
    except psycopg.Error as exc:
        return outcome(exc)
    return "ok"


def savepoint(bench: Bench) -> Cell:
    """Row savepoint: conn.transaction() inside the implicit transaction (a savepoint, not a
    transaction of its own), released at the block's end, then commit()."""
    conn = psycopg.connect(bench.dsn)
    try:
        conn.execute("INSERT INTO t VALUES (1)")
        with conn.transaction():
            conn.execute("INSERT INTO t VALUES (2)")
        conn.commit()
        return Cell(bench.sent(), f"transaction(), commit(): committed: {bench.committed()}")
    finally:
        conn.close()


def autocommit(bench: Bench) -> Cell:
    """Row autocommit: the driver's autocommit switch, then an INSERT."""
    with psycopg.connect(bench.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        return Cell(bench.sent(), f"server: {bench.states()}; committed: {bench.committed()}")


def isolation_level(bench: Bench) -> Cell:
    """Row isolation-level: SERIALIZABLE the driver's way; the level the transaction runs at."""
    with psycopg.connect(bench.dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        row = conn.execute(TRANSACTION_ISOLATION).fetchone()
        assert row is not None
        return Cell(bench.sent(), f"isolation_level set: transaction runs {row[0]}")


def isolation_level_mid_transaction(bench: Bench) -> Cell:
    """Row isolation-level-later: SERIALIZABLE asked for inside a transaction; this one's level, the next one's."""
    with psycopg.connect(bench.dsn) as conn:
        conn.execute("SELECT 1")
        try:
            conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
            asked = "ok"
        except psycopg.Error as exc:
            asked = refused(exc)
        this = conn.execute(TRANSACTION_ISOLATION).fetchone()
        conn.rollback()
        after = conn.execute(TRANSACTION_ISOLATION).fetchone()
        assert this is not None and after is not None
        return Cell(bench.sent(), f"isolation_level set: {asked}; this transaction: {this[0]}, next: {after[0]}")


def pool_return(bench: Bench) -> Cell:
    """Row pool-return: a pooled connection returned in the middle of a transaction."""
    with psycopg_pool.ConnectionPool(bench.dsn, min_size=1, max_size=1, open=True) as pool:
        conn = pool.getconn()
        conn.execute("INSERT INTO t VALUES (1)")
        pool.putconn(conn)
        return Cell(bench.sent(), f"putconn(): committed: {bench.committed()}; pooled: {bench.states()}")


def shared(bench: Bench) -> Cell:
    """Row shared-connection: two threads run a 0.2 s statement on one connection at once."""
    with psycopg.connect(bench.dsn, autocommit=True) as conn:
        return two_threads(bench, lambda: conn.execute("SELECT pg_sleep(0.2)"))


PROBES = {
    "first-statement": first_statement,
    "with-block": with_block,
    "with-block-autocommit": with_block_autocommit,
    "failed-statement": failed_statement,
    "savepoint": savepoint,
    "autocommit": autocommit,
    "isolation-level": isolation_level,
    "isolation-level-later": isolation_level_mid_transaction,
    "pool-return": pool_return,
    "shared-connection": shared,
}
