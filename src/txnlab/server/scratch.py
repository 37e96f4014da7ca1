"""The scratch database: txnlab's only place to write, created per invocation and always dropped.

Ownership is proven, never guessed. Before it creates its database, the owning process
takes a session-level advisory lock, keyed from the database's name, on a connection
to the maintenance database (the DSN's own database), and keeps that connection, and so
the lock, until it has dropped the database from it. The server releases the lock the
moment that session ends, however the process died (kill -9, a power cut, a container
stopped), so a lock that anyone can take proves the owner gone; a process ID proves
nothing across hosts and PID namespaces.

Advisory locks belong to one database (PostgreSQL docs, "Advisory Locks"), so the
name records the OID of the database the lock lives in:
`txnlab_scratch_<pid>_<12 hex random>_<lock database OID>`. The janitor (`drop_abandoned`)
drops a database only if all of these hold: its name has exactly this form, it is owned
by the current role, and the janitor took that lock itself in that database (or that
database no longer exists, which ends every session in it). Comments are for people
and never read: a database that carries a copied comment, or any name txnlab did not
generate, is never dropped.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from types import TracebackType

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from txnlab.errors import ServerError
from txnlab.signals import uninterrupted
from txnlab.server.connect import connect, first_line, with_params

PREFIX = "txnlab_scratch_"
NAME_PATTERN = rf"^{PREFIX}([0-9]+)_([0-9a-f]{{12}})_([0-9]+)$"  # pid, random, lock database OID; also a PostgreSQL regex


class ScratchDatabase:
    """`with ScratchDatabase(server_dsn) as dsn:` a fresh database, dropped on the way out.

    Holds one connection to the maintenance database for its whole life: it carries the
    ownership lock, and it drops the database at the end without connecting again.
    """

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.name = ""
        self.dsn = ""
        self._owner: psycopg2.extensions.connection | None = None

    def __enter__(self) -> str:
        self.create()
        return self.dsn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.drop()

    def create(self) -> None:
        """Lock a fresh name, clear away abandoned scratch databases, create ours.

        Raises ServerError when the role may not create databases or the server refuses.
        Interrupted anywhere (Ctrl-C included), it drops what it may have created first.
        """
        self._owner = connect(self.server_dsn, autocommit=True)
        try:
            with self._owner.cursor() as cur:
                cur.execute(  # idle for the whole run, it must not be timed out: its lock proves us alive
                    "SELECT set_config('idle_session_timeout', '0', false) "
                    "WHERE current_setting('server_version_num')::int >= 140000"
                )
                cur.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
                (lock_database,) = cur.fetchone()
                self.name = f"{PREFIX}{os.getpid()}_{secrets.token_hex(6)}_{lock_database}"
                self.dsn = with_params(self.server_dsn, dbname=self.name)
                cur.execute("SELECT pg_try_advisory_lock(%s::bigint)", [ownership_key(self.name)])
                if not cur.fetchone()[0]:
                    raise ServerError(f"another session holds the lock of the new scratch database {self.name}")
                drop_abandoned(cur)
                self._create_database(cur)
                cur.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS %s").format(sql.Identifier(self.name)), [owner_comment()]
                )
        except BaseException:
            self.drop()
            raise

    def _create_database(self, cur: psycopg2.extensions.cursor) -> None:
        try:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        except psycopg2.errors.InsufficientPrivilege:
            cur.execute("SELECT current_user")
            (user,) = cur.fetchone()
            raise ServerError(
                f"role {user!r} may not create databases, and txnlab only ever works in a "
                f"scratch database of its own; allow it with: ALTER ROLE {user} CREATEDB"
            ) from None
        except psycopg2.Error as exc:
            raise ServerError(f"could not create a scratch database: {first_line(exc)}") from None

    def drop(self) -> None:
        """Drop the database from the owner connection, then close it (which frees the lock).

        A signal must not leave the database behind: it takes effect once the drop is done.
        Raises ServerError if the server refuses; the database is then left with its lock
        freed, for the next txnlab run on this server to drop.
        """
        uninterrupted(self._drop_owned)

    def _drop_owned(self) -> None:
        owner, self._owner = self._owner, None  # handed over with signals held back: none can lose it
        if owner is not None:
            self._drop_from(owner)

    def _drop_from(self, owner: psycopg2.extensions.connection) -> None:
        """Drop from the owner connection; if scenario SQL ended it (`DROP DATABASE postgres
        WITH (FORCE)`, pg_terminate_backend), from a new connection to the server."""
        if not self.name:  # creation stopped before the name was chosen
            owner.close()
            return
        try:
            try:
                self._drop_database(owner)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                if not owner.closed:
                    raise
                owner = connect(self.server_dsn, autocommit=True)
                self._drop_database(owner)
        except (psycopg2.Error, ServerError) as exc:
            reason = first_line(exc) if isinstance(exc, psycopg2.Error) else str(exc)
            raise ServerError(
                f"could not drop the scratch database {self.name}: {reason}; "
                "the next txnlab run on this server drops it"
            ) from None
        finally:
            owner.close()

    def _drop_database(self, conn: psycopg2.extensions.connection) -> None:
        with conn.cursor() as cur:
            drop_database(cur, self.name)


def drop_database(cur: psycopg2.extensions.cursor, name: str) -> None:
    """DROP DATABASE IF EXISTS `name`, ending the sessions still connected to it.

    `cur` is autocommit, on another database. WITH (FORCE) is refused outright when one
    backend there is one this role may not signal, and for a role without superuser or
    pg_signal_backend an autovacuum worker is such a backend (seen on PostgreSQL 15 and
    18): a run would leave its database behind whenever autovacuum happened to visit it.
    Then this role's own sessions there are ended with pg_terminate_backend and a plain
    DROP DATABASE follows, which stops autovacuum workers itself and waits up to 5 s for
    the others to go (dbcommands.c, CountOtherDBBackends). Raises psycopg2.Error when the
    server still refuses (another role's session stays connected, say).
    """
    try:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg2.errors.InsufficientPrivilege:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND usename = current_user AND pid <> pg_backend_pid()",
            [name],
        )
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def ownership_key(name: str) -> int:
    """The advisory lock key (a signed 64-bit integer) that proves a scratch database's owner alive."""
    digest = hashlib.sha256(f"txnlab scratch database {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def owner_comment() -> str:
    """For people reading `\\l+`; never read back by txnlab."""
    return (
        f"txnlab scratch database of pid {os.getpid()} on {socket.gethostname()}; "
        "dropped when that run ends, or by a later run once its owner's lock is free"
    )


def drop_abandoned(cur: psycopg2.extensions.cursor) -> list[str]:
    """Drop the current role's scratch databases whose owner is provably gone; return their names.

    `cur` is on the maintenance database, autocommit. Proof: this session takes the
    owner's advisory lock itself (in the database the name records), or that database
    no longer exists. A database in use by a live owner, or one being dropped by another
    txnlab at the same moment, is left alone.
    """
    cur.execute(
        "SELECT d.datname, (SELECT oid FROM pg_database WHERE datname = current_database()), "
        "EXISTS (SELECT FROM pg_database l WHERE l.oid::text = substring(d.datname FROM '[0-9]+$')) "
        "FROM pg_database d WHERE d.datname ~ %s AND d.datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)",
        [NAME_PATTERN],
    )
    dropped = []
    for name, here, lock_database_exists in cur.fetchall():
        lock_database = int(name.rpartition("_")[2])
        if lock_database_exists and lock_database != here:
            continue  # its owner's lock lives in another database: a run there can tell
        key = ownership_key(name)
        if lock_database_exists:
            cur.execute("SELECT pg_try_advisory_lock(%s::bigint)", [key])
            if not cur.fetchone()[0]:
                continue  # the owner is alive (or another janitor is dropping it)
        try:
            drop_database(cur, name)
            dropped.append(name)
        except psycopg2.Error:
            pass  # the server refused (in use as a template, say): try again next run
        finally:
            if lock_database_exists:
                cur.execute("SELECT pg_advisory_unlock(%s::bigint)", [key])
    return dropped
