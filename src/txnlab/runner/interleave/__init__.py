"""Interleave application functions: a test's own Python code, paused between its statements.

Each function runs on a session of a run (Lab.driving): on that session's thread and
psycopg2 connection, at the run's isolation level, with the scheduler's wait detection.
It runs inside a greenlet on the session's thread, so it can stop at a point between two of
its statements (`before`/`after` a statement, `commit()` or `rollback()`) and go on later,
while another session runs: the dangerous order of a race, replayed exactly, with no sleeps.

A function sees a connection that behaves as psycopg2's (attributes and methods are the
real connection's); the statements it sends through `cursor().execute`, `executemany`,
`callproc`, `commit()`, `rollback()` and `with conn:` are where it can pause.
"""

from __future__ import annotations

from txnlab.runner.interleave.call import Call, InterleavingEnded, PausingConnection, PausingCursor
from txnlab.runner.interleave.moves import Interleaving, interleaving
from txnlab.runner.interleave.points import InterleaveError, Point, after, before

__all__ = [
    "Call", "InterleaveError", "Interleaving", "InterleavingEnded", "PausingConnection", "PausingCursor", "Point",
    "after", "before", "interleaving",
]
