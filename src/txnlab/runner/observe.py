"""Two views of a session after each step, for scenarios about driver behaviour:
what the driver really sent (from the wire tap) and what the server saw (its
pg_stat_activity state, its transaction id, and the locks it holds).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from txnlab.runner.monitor import LockMonitor
from txnlab.runner.wiretap import WireTap
from txnlab.timeline import BackendView

# Table-level locks and SSI's predicate (SIRead) locks, by table name without the run's
# schema; index locks and the virtualxid/transactionid locks every transaction holds
# would only add noise.
VIEW_SQL = """
SELECT a.pid, a.state, a.backend_xid::text,
       coalesce((SELECT array_agg(DISTINCT l.mode || ' on ' || c.relname
                                  || CASE WHEN l.locktype IN ('tuple', 'page') THEN ' (' || l.locktype || ')' ELSE '' END)
                 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                 WHERE l.pid = a.pid AND l.granted AND c.relkind IN ('r', 'p')
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND c.relnamespace = %(schema)s::regnamespace), '{}')
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.backend_type = 'client backend'
  AND (a.pid = %(pid)s OR NOT a.pid = ANY(%(known)s))
ORDER BY a.pid <> %(pid)s, a.pid
"""


class Observer:
    """Reads the views for one session; without a tap (workshop mode) only the server's view."""

    def __init__(self, tap: WireTap | None, monitor: LockMonitor, schema: str) -> None:
        self.tap = tap
        self.monitor = monitor
        self.schema = schema  # locks on the run's own tables only: SIRead locks outlive their runs

    def sent(self, pid: int, session_pids: Collection[int]) -> tuple[str, ...]:
        """The session's own messages, plus those of connections no session owns (pools, engines)."""
        if self.tap is None:
            return ()
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
