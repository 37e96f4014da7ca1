"""libpq itself, as isolationtester uses it, through psycopg 3's binding `psycopg.pq`: opening
a spec's connections, and saying in one line what a result's error or a lost connection was.

Nothing here knows about specs or permutations: runner/isolationtester.py runs them over these
connections. Errors keep what isolationtester prints (severity, primary message, libpq's whole
text) and what txnlab's other views show (SQLSTATE, DETAIL, HINT, CONTEXT).
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Sequence

from psycopg import errors as pg_errors
from psycopg import pq

from txnlab.errors import ServerError
from txnlab.server.connect import with_params
from txnlab.timeline import ErrorInfo

# What pg_regress gives isolationtester (see runner/isolationtester.py), as startup options.
SESSION_OPTIONS = (
    r"-c DateStyle=Postgres,\ MDY -c TimeZone=America/Los_Angeles -c lc_monetary=C -c lc_numeric=C -c lc_time=C"
    r" -c bytea_output=hex -c timezone_abbreviations=Default"
)

CONTROL = "control connection"

CONNECT_SECONDS = 5.0  # how long opening a spec's connections may take


def open_connections(dsn: str, names: Sequence[str], deadline: float = CONNECT_SECONDS) -> list[pq.PGconn]:
    """One libpq connection per name, with pg_regress's settings (application_name txnlab/NAME),
    opened side by side (PQconnectStart/PQconnectPoll) rather than one after the other: a
    spec's connections cost one connection's time. Their notices are dropped until a receiver
    is set (isolationtester's blackhole processor). ServerError when one fails or `deadline`
    (seconds) passes; then none is left open."""
    conns = [
        pq.PGconn.connect_start(with_params(dsn, options=SESSION_OPTIONS, application_name=f"txnlab/{name}").encode())
        for name in names
    ]
    polling = {i: pq.PollingStatus.WRITING for i in range(len(conns))}
    give_up = time.monotonic() + deadline
    try:
        while polling:
            for i, status in list(polling.items()):
                if conns[i].status == pq.ConnStatus.BAD or status == pq.PollingStatus.FAILED:
                    raise connect_failure(conns[i], names[i])
                if status == pq.PollingStatus.OK:
                    del polling[i]
            if not polling:
                break
            left = give_up - time.monotonic()
            if left <= 0:
                raise ServerError(f"cannot open the {names[min(polling)]} connection: no answer within {deadline:g} s")
            readers = [conns[i].socket for i, st in polling.items() if st == pq.PollingStatus.READING]
            writers = [conns[i].socket for i, st in polling.items() if st == pq.PollingStatus.WRITING]
            ready_r, ready_w, _ = select.select(readers, writers, [], left)
            for i, status in list(polling.items()):
                if conns[i].socket in (ready_r if status == pq.PollingStatus.READING else ready_w):
                    polling[i] = conns[i].connect_poll()
    except BaseException:
        for conn in conns:
            conn.finish()
        raise
    return conns


def connection_label(name: str) -> str:
    """How messages name a connection: "the control connection" or "session s1's connection"."""
    return f"the {CONTROL}" if name == CONTROL else f"session {name}'s connection"


def connect_failure(conn: pq.PGconn, name: str) -> ServerError:
    """A connection that could not be opened, in one line with libpq's first line about it."""
    message = conn.get_error_message().strip().splitlines()
    return ServerError(f"cannot open {connection_label(name)}: {message[0] if message else 'unknown error'}")


def lost(name: str, pg: pq.PGconn, when: str) -> ServerError:
    """One line: which session's connection was lost, when, and libpq's first line about it
    (isolationtester exits there too: "PQconsumeInput failed", "failed to send query")."""
    lines = pg.get_error_message().strip().splitlines()
    return ServerError(f"{connection_label(name)} was lost {when}: "
                       f"{lines[0] if lines else 'no connection to the server'}")


def connection_error(pg: pq.PGconn) -> ErrorInfo:
    """libpq's own error about a connection it cannot use (no SQLSTATE, no severity): the
    message isolationtester prints whole, as PQerrorMessage gives it."""
    full = pg.error_message.decode("utf-8", "replace")
    lines = full.strip().splitlines()
    return ErrorInfo(exception="psycopg.OperationalError", message=lines[0] if lines else "no connection to the server",
                     libpq_message=full)


def closed_by_server(fd: int) -> bool:
    """Whether a readable socket holds only its end (the server closed the connection):
    a peek, which leaves the bytes to libpq. Then PQgetResult, not PQconsumeInput, must
    read it: its error result is what isolationtester prints ("server closed the connection
    unexpectedly ..."), where a failed PQconsumeInput would leave a dropped socket behind."""
    with socket.socket(fileno=os.dup(fd)) as peer:
        try:
            return peer.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:  # reset by the peer: libpq reports that too
            return True


def server_text(value: bytes | None) -> str | None:
    """A value or message libpq gives as bytes, as text (the server's encoding is UTF-8 here);
    None stays None (SQL NULL, a field the server did not send)."""
    return value.decode("utf-8", "replace") if value is not None else None


def error_info(result: pq.PGresult) -> ErrorInfo:
    """A failed result as an ErrorInfo: SQLSTATE, severity, primary message and the rest."""
    field_ = pq.DiagnosticField
    sqlstate = server_text(result.error_field(field_.SQLSTATE))
    message = server_text(result.error_field(field_.MESSAGE_PRIMARY))
    full = result.error_message.decode("utf-8", "replace")
    return ErrorInfo(
        exception=_exception_name(sqlstate),
        message=message if message is not None else (full.strip().splitlines() or ["unknown error"])[0],
        sqlstate=sqlstate,
        detail=server_text(result.error_field(field_.MESSAGE_DETAIL)),
        hint=server_text(result.error_field(field_.MESSAGE_HINT)),
        context=server_text(result.error_field(field_.CONTEXT)),
        severity=server_text(result.error_field(field_.SEVERITY)) if message is not None else None,
        libpq_message=full,
    )


def _exception_name(sqlstate: str | None) -> str:
    """The psycopg exception class a SQLSTATE maps to (psycopg.errors), as txnlab names errors;
    a libpq error without SQLSTATE is an OperationalError, an unknown SQLSTATE a DatabaseError."""
    if sqlstate is None:
        return "psycopg.OperationalError"
    try:
        return f"psycopg.errors.{pg_errors.lookup(sqlstate).__name__}"
    except KeyError:
        return "psycopg.DatabaseError"
