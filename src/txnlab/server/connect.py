"""Opening psycopg2 connections with errors a user can read on one line, within a bounded time.

libpq's connect_timeout applies to each host and each address a host name resolves to,
and is at least 2 s (libpq docs, "Parameter Key Words"); name resolution is not bounded
by it at all. So a two-host DSN could take twice as long as one. Unless the user chose
a connect_timeout (in the DSN or $PGCONNECT_TIMEOUT), txnlab waits for the whole
connection attempt, every host included, at most CONNECT_DEADLINE_SECONDS.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import psycopg2
import psycopg2.extensions

from txnlab.errors import ServerError
from txnlab.redaction import describe_dsn, dsn_problem

CONNECT_DEADLINE_SECONDS = 2.5  # all hosts together; Python needs up to ~2 s to start on a busy machine: within 5 s
ATTEMPT_TIMEOUT_SECONDS = 2  # libpq's connect_timeout per host and address; 2 is libpq's minimum


def with_params(dsn: str, **params: Any) -> str:
    """The same server, with some connection parameters replaced (dbname, options...)."""
    return psycopg2.extensions.make_dsn(dsn, **params)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (libpq adds detail lines), or its class name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(dsn: str, *, autocommit: bool = False, **params: Any) -> psycopg2.extensions.connection:
    """Connect, giving up within CONNECT_DEADLINE_SECONDS (or as the user's own connect_timeout
    says), and turn failures into one ServerError line that names the server but no secret."""
    try:
        parsed = psycopg2.extensions.parse_dsn(dsn)
    except (psycopg2.ProgrammingError, UnicodeEncodeError) as exc:
        raise ServerError(f"invalid DSN: {dsn_problem(exc)}") from None
    users_choice = "connect_timeout" in parsed or "connect_timeout" in params or os.environ.get("PGCONNECT_TIMEOUT")
    deadline = None if users_choice else CONNECT_DEADLINE_SECONDS
    if not users_choice:
        params["connect_timeout"] = ATTEMPT_TIMEOUT_SECONDS
    try:
        conn = _Attempt(dsn, params).outcome(deadline)
    except psycopg2.OperationalError as exc:
        raise ServerError(f"cannot connect to PostgreSQL ({describe_dsn(dsn)}): {first_line(exc)}") from None
    except TimeoutError:
        raise ServerError(
            f"cannot connect to PostgreSQL ({describe_dsn(dsn)}): no answer within {deadline:g} s "
            "(set connect_timeout in the DSN to wait longer)"
        ) from None
    conn.autocommit = autocommit
    return conn


class _Attempt(threading.Thread):
    """psycopg2.connect in a thread of its own, so that the caller can stop waiting for it.

    An attempt given up on goes on in the background until libpq's own connect_timeout
    ends it; a connection it still makes is closed at once.
    """

    def __init__(self, dsn: str, params: dict[str, Any]) -> None:
        super().__init__(name="txnlab-connect", daemon=True)
        self._dsn, self._params = dsn, params
        self._lock = threading.Lock()
        self._result: psycopg2.extensions.connection | Exception | None = None
        self._abandoned = False

    def run(self) -> None:
        try:
            result: psycopg2.extensions.connection | Exception = psycopg2.connect(self._dsn, **self._params)
        except Exception as exc:  # handed over to the waiting thread
            result = exc
        with self._lock:
            if not self._abandoned:
                self._result = result
                return
        if isinstance(result, psycopg2.extensions.connection):
            result.close()

    def outcome(self, seconds: float | None) -> psycopg2.extensions.connection:
        """The connection, or the attempt's exception, or TimeoutError after `seconds` (None: no limit)."""
        if seconds is None:
            self.run()  # no deadline of txnlab's: libpq's connect_timeout, as the user set it
            result = self._give_up()
        else:
            self.start()
            try:
                self.join(seconds)
            except BaseException:  # Ctrl-C while waiting: nothing may stay open
                late = self._give_up()
                if isinstance(late, psycopg2.extensions.connection):
                    late.close()
                raise
            result = self._give_up()
        if isinstance(result, Exception):
            raise result
        if result is None:
            raise TimeoutError
        return result

    def _give_up(self) -> psycopg2.extensions.connection | Exception | None:
        with self._lock:
            self._abandoned = True
            return self._result
