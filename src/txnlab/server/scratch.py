"""The scratch database: txnlab's only place to write, created per invocation and always dropped.

Like pytest-postgresql's janitor, this module only creates and drops databases. A
scratch database left behind by a killed process (kill -9, a power cut) is dropped
by the next txnlab run on the same host, once its process is gone.
"""

from __future__ import annotations

import os
import secrets
import socket
from types import TracebackType

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from txnlab.errors import ServerError
from txnlab.signals import deferred_signals
from txnlab.server.connect import connect, first_line, with_params

PREFIX = "txnlab_scratch_"


class ScratchDatabase:
    """`with ScratchDatabase(server_dsn) as dsn:` a fresh database, dropped on the way out."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.name = f"{PREFIX}{os.getpid()}_{secrets.token_hex(3)}"
        self.dsn = with_params(server_dsn, dbname=self.name)
        self.created = False

    def __enter__(self) -> str:
        try:
            self.create()
        except BaseException:  # a signal, a failed COMMENT: the half-made database goes too
            self.drop()
            raise
        return self.dsn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.drop()

    def create(self) -> None:
        conn = connect(self.server_dsn, autocommit=True)
        try:
            with conn.cursor() as cur:
                drop_abandoned(cur)
                try:
                    with deferred_signals():  # a signal must not come between CREATE and `created`
                        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
                        self.created = True
                except psycopg2.errors.InsufficientPrivilege:
                    cur.execute("SELECT current_user")
                    (user,) = cur.fetchone()
                    raise ServerError(
                        f"role {user!r} may not create databases, and txnlab only ever works in a "
                        f"scratch database of its own; allow it with: ALTER ROLE {user} CREATEDB"
                    ) from None
                except psycopg2.Error as exc:
                    raise ServerError(f"could not create a scratch database: {first_line(exc)}") from None
                cur.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS %s").format(sql.Identifier(self.name)),
                    [owner_comment()],
                )
        finally:
            conn.close()

    def drop(self) -> None:
        """Drop it even while a signal arrives: the signal takes effect once it is gone."""
        if not self.created:
            return
        with deferred_signals():
            conn = connect(self.server_dsn, autocommit=True)
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
                    )
                self.created = False
            finally:
                conn.close()


def owner_comment(pid: int | None = None) -> str:
    return f"txnlab scratch database; pid {pid or os.getpid()} on {socket.gethostname()}"


def drop_abandoned(cur: psycopg2.extensions.cursor) -> list[str]:
    """Drop scratch databases of this host whose txnlab process no longer exists."""
    cur.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE datname LIKE %s AND pg_get_userbyid(datdba) = current_user",
        [PREFIX.replace("_", r"\_") + "%"],
    )
    dropped = []
    for name, comment in cur.fetchall():
        pid = _abandoned_pid(comment or "")
        if pid is None:
            continue
        try:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            dropped.append(name)
        except psycopg2.Error:
            continue  # another txnlab is dropping it, or it is in use: leave it
    return dropped


def _abandoned_pid(comment: str) -> int | None:
    prefix = "txnlab scratch database; pid "
    if not comment.startswith(prefix):
        return None
    pid_text, _, host = comment[len(prefix):].partition(" on ")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    except PermissionError:
        return None
    return None
