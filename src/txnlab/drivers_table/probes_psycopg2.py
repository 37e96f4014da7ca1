"""psycopg2's probes: the code a psycopg2 user writes, one function per behaviour."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
import psycopg2.pool

from txnlab.drivers_table.bench import TRANSACTION_ISOLATION, Bench, outcome, refused, two_threads
from txnlab.drivers_table.model import Cell

# psycopg2.extensions.TRANSACTION_STATUS_* by value: the driver's own view of the session.
STATUS = {
    getattr(psycopg2.extensions, name): name.removeprefix("TRANSACTION_STATUS_")
    for name in dir(psycopg2.extensions) if name.startswith("TRANSACTION_STATUS_")
}


def status(conn: psycopg2.extensions.connection) -> str:
    """psycopg2's view: TRANSACTION_STATUS_* without its prefix (IDLE, INTRANS, INERROR...)."""
    return STATUS[conn.info.transaction_status]


def first_statement(bench: Bench) -> Cell:
    """Row first-statement: one INSERT on a new connection; the session's state after it."""
    conn = psycopg2.connect(bench.dsn)
    try:
        conn.cursor().execute("INSERT INTO t VALUES (1)")
        return Cell(bench.sent(), f"server: {bench.states()}; driver: {status(conn)}")
    finally:
        conn.close()


def with_block(bench: Bench, autocommit: bool = False) -> Cell:
    """Row with-block: an INSERT inside the connection's `with` block; committed? closed?"""
    conn = psycopg2.connect(bench.dsn)
    try:
        conn.autocommit = autocommit
        with conn:
            conn.cursor().execute("INSERT INTO t VALUES (1)")
        session = bench.session_of(conn.info.backend_pid, closed=bool(conn.closed))
        return Cell(bench.sent(), f"committed: {bench.committed()}; closed={bool(conn.closed)}, session {session}")
    finally:
        conn.close()


def with_block_autocommit(bench: Bench) -> Cell:
    """Row with-block-autocommit: with_block on an autocommit connection."""
    return with_block(bench, autocommit=True)


def failed_statement(bench: Bench) -> Cell:
    """Row failed-statement: a division by zero, another statement, then the recovery."""
    conn = psycopg2.connect(bench.dsn)
    try:
        results = [_try(conn, "SELECT 1/0"), _try(conn, "SELECT 1")]
        driver = status(conn)
        conn.rollback()
        results.append(_try(conn, "SELECT 1"))
        return Cell(bench.sent(), f"{results[0]}, then {results[1]} (driver: {driver}); "
                                  f"after rollback(): {results[2]}")
    finally:
        conn.close()


def _try(conn: psycopg2.extensions.connection, statement: str) -> str:
    try:
        conn.cursor().execute(statement)
    except psycopg2.Error as exc:
        return outcome(exc)
    return "ok"


def savepoint(bench: Bench) -> Cell:
    """Row savepoint: a nested unit of work inside a transaction, released, then commit();
    psycopg2 has no API for it, so the user writes the SQL."""
    conn = psycopg2.connect(bench.dsn)
    try:
        cur = conn.cursor()
        cur.execute("INSERT INTO t VALUES (1)")
        cur.execute("SAVEPOINT s")
        cur.execute("INSERT INTO t VALUES (2)")
        cur.execute("RELEASE SAVEPOINT s")
        conn.commit()
        return Cell(bench.sent(), f"no API: SQL, commit(): committed: {bench.committed()}")
    finally:
        conn.close()


def autocommit(bench: Bench) -> Cell:
    """Row autocommit: the driver's autocommit switch, then an INSERT."""
    conn = psycopg2.connect(bench.dsn)
    try:
        conn.autocommit = True
        conn.cursor().execute("INSERT INTO t VALUES (1)")
        return Cell(bench.sent(), f"server: {bench.states()}; committed: {bench.committed()}")
    finally:
        conn.close()


def isolation_level(bench: Bench) -> Cell:
    """Row isolation-level: SERIALIZABLE the driver's way; the level the transaction runs at."""
    conn = psycopg2.connect(bench.dsn)
    try:
        conn.set_session(isolation_level="SERIALIZABLE")
        cur = conn.cursor()
        cur.execute(TRANSACTION_ISOLATION)
        (level,) = cur.fetchone()
        return Cell(bench.sent(), f"set_session(): transaction runs {level}")
    finally:
        conn.close()


def isolation_level_mid_transaction(bench: Bench) -> Cell:
    """Row isolation-level-later: SERIALIZABLE asked for inside a transaction; this one's level, the next one's."""
    conn = psycopg2.connect(bench.dsn)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        try:
            conn.set_session(isolation_level="SERIALIZABLE")
            asked = "ok"
        except psycopg2.Error as exc:
            asked = refused(exc)
        cur.execute(TRANSACTION_ISOLATION)
        (this,) = cur.fetchone()
        conn.rollback()
        cur.execute(TRANSACTION_ISOLATION)
        (after,) = cur.fetchone()
        return Cell(bench.sent(), f"set_session(): {asked}; this transaction: {this}, next: {after}")
    finally:
        conn.close()


def pool_return(bench: Bench) -> Cell:
    """Row pool-return: a pooled connection returned in the middle of a transaction."""
    pool = psycopg2.pool.SimpleConnectionPool(1, 1, bench.dsn)
    try:
        conn = pool.getconn()
        conn.cursor().execute("INSERT INTO t VALUES (1)")
        pool.putconn(conn)
        return Cell(bench.sent(), f"putconn(): committed: {bench.committed()}; pooled: {bench.states()}")
    finally:
        pool.closeall()


def shared(bench: Bench) -> Cell:
    """Two threads run a 0.2 s statement on one connection at once."""
    conn = psycopg2.connect(bench.dsn)
    conn.autocommit = True
    try:
        return two_threads(bench, lambda: conn.cursor().execute("SELECT pg_sleep(0.2)"))
    finally:
        conn.close()


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
