"""What the server counted during a measured run, read from outside it.

Counters: pg_stat_database's xact_commit, xact_rollback and deadlocks for the scratch
database, read before and after the run from a connection to the maintenance database (the
DSN's own database), so the observer's own transactions never count. Since PostgreSQL 15 a
backend flushes its counts when it exits (before it leaves pg_stat_activity) or when idle, at
most once a second (docs, "The Cumulative Statistics System"): so every connection that ran
work is closed and `settled` waits until no backend of the scratch database is left before
each reading. Servers whose pg_stat_database has no row for the database (before 15 the
counts arrive late through the stats collector; some PostgreSQL-compatible engines have none)
give None and a note. Each session commits one transaction of its own while it starts, before
it runs any statement: `Counters.committed_since` takes the sessions started off.

Lock waits: `LockWaitSampler` polls pg_locks every 10 ms (its own maintenance connection)
for locks not granted by backends of the scratch database. It also notes the autovacuum
workers it sees there: their transactions count in xact_commit (and in no session), so a run
they visit has a server count above the tool's, which the run says. A wait is (pid, waitstart); its
time is the last sample that still saw it minus waitstart, so the sum is a lower bound (a wait
ends up to 10 ms after its last sighting; a wait shorter than a sampling interval may be
missed). pg_locks.waitstart exists since PostgreSQL 14.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

from txnlab.server.connect import connect, first_line, with_params
from txnlab.server.footprint import maintenance_database

SETTLE_SECONDS = 10.0
FIRST_EXACT_VERSION = 150000  # backends flush their counts at exit from PostgreSQL 15 on
SAMPLE_SECONDS = 0.01
APPLICATION_NAME = "txnlab bench observer"

COUNTERS_SQL = "SELECT xact_commit, xact_rollback, deadlocks, sessions FROM pg_stat_database WHERE datname = %s"
BACKENDS_SQL = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
WAITS_SQL = """
SELECT a.pid, l.waitstart, clock_timestamp(), a.backend_type = 'autovacuum worker'
FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted AND l.waitstart IS NOT NULL
WHERE a.datname = $1 AND (l.waitstart IS NOT NULL OR a.backend_type = 'autovacuum worker')
"""


@dataclass(frozen=True)
class Counters:
    """pg_stat_database's counts for one database at one moment (`sessions`: sessions
    established, PostgreSQL 14+)."""

    committed: int
    rolled_back: int
    deadlocks: int
    sessions: int

    def committed_since(self, before: Counters) -> int:
        """Transactions committed since `before` by the sessions' own statements: every session
        commits one transaction of its own as it starts (its catalog reads, before any statement;
        test_bench_server_counts shows it), so the sessions started are taken off."""
        return self.committed - before.committed - (self.sessions - before.sessions)


def observer(server_dsn: str) -> psycopg2.extensions.connection:
    """An autocommit connection to the maintenance database (ServerError if it fails)."""
    dsn = with_params(server_dsn, dbname=maintenance_database(server_dsn))
    return connect(dsn, autocommit=True, application_name=APPLICATION_NAME)


def settled(conn: psycopg2.extensions.connection, database: str) -> Counters | None:
    """The counters of `database` once none of its backends is left (at most SETTLE_SECONDS),
    so every count has been flushed; None before PostgreSQL 15 or when the server keeps no
    such row (a PostgreSQL-compatible engine, say)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    with conn.cursor() as cur:
        while True:
            cur.execute(BACKENDS_SQL, [database])
            if cur.fetchone()[0] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        cur.execute("SELECT current_setting('server_version_num')::int >= %s", [FIRST_EXACT_VERSION])
        if not cur.fetchone()[0]:
            return None
        try:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute(COUNTERS_SQL, [database])
        except psycopg2.Error:
            return None
        row = cur.fetchone()
    if row is None or None in row:
        return None
    return Counters(*(int(v) for v in row))


class LockWaitSampler:
    """`with LockWaitSampler(server_dsn, database) as sampler:` polls pg_locks in a thread;
    afterwards `wait_ms` (a lower bound, ms) and `waits` (distinct waits seen), or `problem`
    when the server could not be sampled (no waitstart before PostgreSQL 14, say)."""

    def __init__(self, server_dsn: str, database: str) -> None:
        self.database = database
        self.conn = observer(server_dsn)
        self._seen: dict[tuple[int, object], float] = {}  # (pid, waitstart) -> ms waited when last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="txnlab-lock-sampler", daemon=True)
        self.problem: str | None = None
        self.autovacuum: set[int] = set()  # autovacuum workers seen in the database

    def __enter__(self) -> LockWaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.conn.close()

    def _sample(self) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"PREPARE txnlab_lock_waits(name) AS {WAITS_SQL}")  # planned once: a sample costs less
                while not self._stop.is_set():
                    cur.execute("EXECUTE txnlab_lock_waits(%s)", [self.database])
                    for pid, waitstart, now, autovacuum in cur.fetchall():
                        if autovacuum:
                            self.autovacuum.add(pid)
                        if waitstart is not None:
                            self._seen[(pid, waitstart)] = (now - waitstart).total_seconds() * 1000.0
                    self._stop.wait(SAMPLE_SECONDS)
        except psycopg2.Error as exc:
            self.problem = first_line(exc)

    @property
    def wait_ms(self) -> float:
        return sum(self._seen.values())

    @property
    def waits(self) -> int:
        return len(self._seen)
