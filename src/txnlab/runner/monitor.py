"""Lock detection: ask the server which of the run's sessions are waiting, never guess by sleeping.

`pg_isolation_test_session_is_blocked` is the function PostgreSQL's own isolationtester
uses: true when a session waits for a lock held (or queued for) by another of the given
sessions, or waits for a safe snapshot. One call costs about 0.1 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2.extensions

from txnlab.runner.execute import guarded
from txnlab.server.connect import connect
from txnlab.timeline import LockWait

LABEL = "the lock monitor's connection"

BLOCKED_SQL = (
    "PREPARE txnlab_blocked(int[], int[]) AS "
    "SELECT coalesce(array_agg(pid), '{}') FROM unnest($1) AS pid "
    "WHERE pg_isolation_test_session_is_blocked(pid, $2)"
)

# An advisory lock's key as the application wrote it, from pg_locks `l` (PostgreSQL's docs,
# "pg_locks": a bigint key is split into classid (high half) and objid (low half) with
# objsubid 1, two int4 keys are classid and objid with objsubid 2; oids are unsigned, so an
# int4 key is brought back to its sign; a pair is shown as "(1, -2)"). An object lock names its object.
LOCK_KEY_SQL = """CASE
  WHEN l.locktype = 'advisory' AND l.objsubid = 1 THEN ((l.classid::bigint << 32) | l.objid::bigint)::text
  WHEN l.locktype = 'advisory' THEN
    '(' || (l.classid::bigint - CASE WHEN l.classid::bigint >= 2147483648 THEN 4294967296 ELSE 0 END)::text || ', '
    || (l.objid::bigint - CASE WHEN l.objid::bigint >= 2147483648 THEN 4294967296 ELSE 0 END)::text || ')'
  WHEN l.locktype = 'object' THEN pg_describe_object(l.classid, l.objid, l.objsubid)
END"""

# Who blocks the waiting session (lock holders, sessions ahead in the lock queue, or the
# transactions a DEFERRABLE reader waits out) and the lock it asks for. A waiter for a
# transaction id that holds a tuple lock is waiting for that row (heapam's order: the
# tuple lock first, then the wait for the row's locker): the row is read from it.
WAIT_SQL = f"""
SELECT blockers, l.locktype, l.mode, coalesce(c.relname, r.relname), coalesce(c.relkind, r.relkind)::text,
       coalesce(l.page, r.page), coalesce(l.tuple, r.tuple), {LOCK_KEY_SQL}, extract(epoch FROM l.waitstart)
FROM (SELECT pg_blocking_pids(%(pid)s) || pg_safe_snapshot_blocking_pids(%(pid)s) AS blockers) b
LEFT JOIN pg_locks l ON l.pid = %(pid)s AND NOT l.granted
LEFT JOIN pg_class c ON c.oid = l.relation
LEFT JOIN LATERAL (
  SELECT rc.relname, rc.relkind, t.page, t.tuple FROM pg_locks t JOIN pg_class rc ON rc.oid = t.relation
  WHERE t.pid = %(pid)s AND t.granted AND t.locktype = 'tuple' LIMIT 1
) r ON l.locktype = 'transactionid'
"""


@dataclass(frozen=True)
class WaitInfo:
    """Who a waiting backend waits for (pids) and the lock it asks for."""

    blocker_pids: tuple[int, ...]
    lock: LockWait


class LockMonitor:
    """A connection of its own, outside the scenario, that watches the sessions.

    Every query raises ConnectionLost if the connection died: without the monitor a run
    cannot tell a wait from a slow step, so it must end."""

    def __init__(self, dsn: str) -> None:
        self.conn: psycopg2.extensions.connection = connect(dsn, autocommit=True, application_name="txnlab monitor")
        self._cur = self.conn.cursor()
        self._query(BLOCKED_SQL)
        self._has_waitstart = self.conn.server_version >= 140000

    def _query(self, sql: str, params: object = None) -> None:
        with guarded(self.conn, LABEL):
            self._cur.execute(sql, params)

    def blocked(self, pids: Sequence[int], run_pids: Sequence[int]) -> set[int]:
        """Which of `pids` are waiting for another of `run_pids`."""
        self._query("EXECUTE txnlab_blocked(%s, %s)", [list(pids), list(run_pids)])
        row = self._cur.fetchone()
        return set(row[0]) if row else set()

    def wait_info(self, pid: int) -> WaitInfo:
        """What `pid` waits for now: its blockers' pids and the lock (see WAIT_SQL)."""
        query = WAIT_SQL if self._has_waitstart else WAIT_SQL.replace("extract(epoch FROM l.waitstart)", "NULL")
        self._query(query, {"pid": pid})
        rows = self._cur.fetchall()
        if not rows:
            return WaitInfo(blocker_pids=(), lock=LockWait(None, None, None, None))
        blockers, locktype, mode, relation, relkind, page, tuple_, key, waitstart = rows[0]
        return WaitInfo(
            blocker_pids=tuple(dict.fromkeys(blockers)),
            lock=LockWait(
                locktype=locktype,
                mode=mode,
                relation=relation,
                wait_started=float(waitstart) if waitstart is not None else None,
                relkind=relkind,
                page=page,
                tuple=tuple_,
                key=key,
            ),
        )

    def cancel(self, pid: int) -> None:
        """Cancel the session's running statement (what psql's Ctrl-C does).

        Sent from this connection rather than with psycopg2's conn.cancel(), which keeps
        the GIL while it waits and would stall a wire tap running in this process.
        """
        self._query("SELECT pg_cancel_backend(%s)", [pid])

    def terminate(self, pid: int) -> None:
        """End the session's backend (its transaction rolls back): when a cancel did not work."""
        self._query("SELECT pg_terminate_backend(%s)", [pid])

    def close(self) -> None:
        """Close the connection (only the main thread ever uses it)."""
        if not self.conn.closed:
            self.conn.close()
