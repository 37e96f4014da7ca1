"""Two views of a session after each step, for scenarios about driver behaviour:
what the driver really sent (from the wire tap) and what the server saw (its
pg_stat_activity state, its transaction id, and the locks it holds).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from txnlab.runner.monitor import LOCK_KEY_SQL, LockMonitor
from txnlab.runner.wiretap import WireTap
from txnlab.timeline import BackendView

# The locks a backend holds, in words, on the run's own objects only (SIRead locks outlive
# their runs, and other databases are none of the lesson's business): locks on tables,
# partitioned tables, materialized views, indexes and sequences of the run's schema (with
# the kind when it is not a table), their SIRead page and tuple locks (an SSI false positive
# lives on an index page), and advisory locks taken in the run's database, whether
# session-level or transaction-level (pg_locks does not tell them apart: the ones still held
# after a ROLLBACK are the session-level ones). The transactionid and virtualxid locks every
# transaction holds on itself would only add noise. Facts: PostgreSQL's docs, "pg_locks".
# `{pid}` is the backend's pid (an SQL expression).
HELD_LOCKS_SQL = f"""
coalesce((SELECT array_agg(DISTINCT l.mode || ' on '
                                    || CASE WHEN l.locktype = 'advisory' THEN 'advisory key ' || k.key ELSE
                                         CASE c.relkind WHEN 'i' THEN 'index ' WHEN 'I' THEN 'index '
                                                        WHEN 'S' THEN 'sequence '
                                                        WHEN 'm' THEN 'materialized view ' ELSE '' END
                                         || c.relname
                                         || CASE WHEN l.locktype IN ('tuple', 'page')
                                                 THEN ' (' || l.locktype || ')' ELSE '' END END)
          FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation, LATERAL (SELECT {LOCK_KEY_SQL} AS key) k
          WHERE l.pid = {{pid}} AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND (l.locktype = 'advisory'
                 OR c.relkind IN ('r', 'p', 'm', 'i', 'I', 'S') AND c.relnamespace = %(schema)s::regnamespace)),
         '{{{{}}}}')
"""

VIEW_SQL = f"""
SELECT a.pid, a.state, a.backend_xid::text, {HELD_LOCKS_SQL.format(pid="a.pid")}
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.backend_type = 'client backend'
  AND (a.pid = %(pid)s OR NOT a.pid = ANY(%(known)s))
ORDER BY a.pid <> %(pid)s, a.pid
"""

HELD_SQL = f"SELECT {HELD_LOCKS_SQL.format(pid='%(pid)s')}"


class Observer:
    """Reads the views for one session; without a tap (workshop mode) only the server's view."""

    def __init__(self, tap: WireTap | None, monitor: LockMonitor, schema: str) -> None:
        self.tap = tap
        self.monitor = monitor
        self.schema = schema  # locks on the run's own tables only: SIRead locks outlive their runs

    def sent(self, pid: int, session_pids: Collection[int]) -> tuple[str, ...] | None:
        """The session's own messages, plus those of connections no session owns (pools, engines);
        None when the run has no wire tap (nothing was recorded, which is not "nothing was sent")."""
        if self.tap is None:
            return None
        return self.tap.take(pid) + self.tap.take_except(set(session_pids))

    def server_view(
        self, pid: int, hidden_pids: Collection[int], labels: Mapping[int, str]
    ) -> tuple[BackendView, ...]:
        """This session, and every other connection in the run's database but the hidden
        ones (txnlab's own, the other sessions); `labels` names the watched ones."""
        cur = self.monitor.conn.cursor()
        cur.execute(VIEW_SQL, {"pid": pid, "known": list(hidden_pids), "schema": self.schema})
        views = []
        for backend, state, xid, locks in cur.fetchall():
            label = "this session" if backend == pid else labels.get(backend, "other connection")
            views.append(BackendView(label=label, state=state, xid=xid, locks=tuple(sorted(locks))))
        return tuple(views)


def held_locks(monitor: LockMonitor, pid: int, schema: str) -> tuple[str, ...]:
    """The locks backend `pid` holds now, in the capture view's words (see HELD_LOCKS_SQL),
    sorted: what a `holds:` expectation compares with."""
    cur = monitor.conn.cursor()
    cur.execute(HELD_SQL, {"pid": pid, "schema": schema})
    row = cur.fetchone()
    return tuple(sorted(row[0])) if row else ()
