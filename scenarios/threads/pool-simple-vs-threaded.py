"""SimpleConnectionPool versus ThreadedConnectionPool: the difference is one lock.

A Python scenario. What it can show deterministically, it shows: what the classes
say about themselves, that SimpleConnectionPool's getconn/putconn are the base
class's unguarded bookkeeping, and, by wrapping ThreadedConnectionPool's lock in a
recorder that delegates to it, that every getconn() and putconn() of both threads
goes through that lock. What it cannot show is a SimpleConnectionPool going wrong:
that needs two calls to interleave within a few Python bytecodes, which no step order
can force. It does not pretend to.

The ThreadedConnectionPool's connections are registered with run.watch, so that a
lock wait between them is seen like a wait between sessions.
"""

from __future__ import annotations

import threading

from psycopg2.pool import AbstractConnectionPool, SimpleConnectionPool, ThreadedConnectionPool

LOCK_ROW = "SELECT reserved_by FROM items WHERE id = 1 FOR UPDATE"

SCENARIO = {
    "name": "threads-pool-simple-vs-threaded",
    "title": "SimpleConnectionPool is not thread-safe, ThreadedConnectionPool is: the difference is one lock",
    "summary": (
        "psycopg2.pool offers two ready-made pools. Its documentation says that "
        "SimpleConnectionPool 'can't be shared across different threads' and is 'useful "
        "only for single-threaded applications', while ThreadedConnectionPool 'can be "
        "safely used in multi-threaded applications'. The difference is a single "
        "threading.Lock. SimpleConnectionPool's getconn() and putconn() are the base "
        "class's bookkeeping as it is: bump a key counter, pop an idle connection, compare "
        "the count with maxconn, fill two dicts, with nothing to stop two threads doing it "
        "at the same moment. Two overlapping calls can get the same key, and so the same "
        "connection, or both pass the maxconn check. ThreadedConnectionPool runs the same "
        "code while holding its lock. The scenario shows the classes' own docstrings, "
        "shows that SimpleConnectionPool's methods are the unguarded ones, and records, "
        "through a wrapper around ThreadedConnectionPool's lock, that every getconn() and "
        "putconn() of thread A and thread B acquires and releases it. It does not show a "
        "SimpleConnectionPool going wrong: that needs two calls to interleave within a few "
        "Python bytecodes, which no step order can force, and a lesson that fails only "
        "sometimes teaches nothing. Used by one thread at a time, as here, "
        "SimpleConnectionPool works, which is exactly why the bug waits for production "
        "load. Last, the threads use the connections ThreadedConnectionPool gave them: "
        "each is a session of its own, so thread B's SELECT ... FOR UPDATE waits for the "
        "row lock of thread A's transaction and goes on when A commits. A pool hands out "
        "connections; each thread still gets its own transaction. A only locks the row, "
        "so every level behaves the same."
    ),
    "tags": ["threads", "psycopg2", "driver", "python", "pool", "locks"],
    "references": [
        "https://www.psycopg.org/docs/pool.html",
        "https://www.psycopg.org/docs/usage.html#thread-and-process-safety",
        "https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE",
    ],
    "setup": (
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, reserved_by text);\n"
        "INSERT INTO items VALUES (1, 'widget', NULL);"
    ),
    "sessions": {"thread_a": {}, "thread_b": {}},
    "steps": [
        {"name": "docstrings", "session": "thread_a",
         "sql": "SimpleConnectionPool.__doc__, ThreadedConnectionPool.__doc__",
         "narration": "What the two classes of the installed psycopg2 say about themselves."},
        {"name": "simple_unguarded", "session": "thread_a",
         "sql": "SimpleConnectionPool.getconn is AbstractConnectionPool._getconn (and putconn); a lock?",
         "narration": "SimpleConnectionPool's methods are the base class's bookkeeping with no lock around it."},
        {"name": "simple_a_getconn", "session": "thread_a", "sql": "simple_pool.getconn()"},
        {"name": "simple_b_getconn", "session": "thread_b", "sql": "simple_pool.getconn()",
         "narration": "One thread after the other, SimpleConnectionPool hands out two different connections "
                      "without trouble: nothing overlaps, so nothing can race."},
        {"name": "threaded_a_getconn", "session": "thread_a", "sql": "conn_a = threaded_pool.getconn()",
         "narration": "The ThreadedConnectionPool's lock is wrapped in a recorder: thread A's getconn() "
                      "acquires and releases it."},
        {"name": "threaded_b_getconn", "session": "thread_b", "sql": "conn_b = threaded_pool.getconn()",
         "narration": "So does thread B's, and B gets a different connection."},
        {"name": "a_locks_row", "session": "thread_a", "sql": f"conn_a: {LOCK_ROW}",
         "narration": "Thread A reserves the widget: its transaction holds the row lock."},
        {"name": "b_locks_row", "session": "thread_b", "sql": f"conn_b: {LOCK_ROW}",
         "narration": "Thread B's connection is another session with another transaction: it waits for A's "
                      "row lock."},
        {"name": "a_commit_putconn", "session": "thread_a", "sql": "conn_a.commit(); threaded_pool.putconn(conn_a)",
         "narration": "Thread A commits (releasing the row lock) and returns its connection, through the lock "
                      "again. B's SELECT goes on."},
        {"name": "b_commit_putconn", "session": "thread_b", "sql": "conn_b.commit(); threaded_pool.putconn(conn_b)"},
    ],
    "expect": {
        "all": {
            "blocked": ["b_locks_row"],
            "rows": {
                "docstrings": [[{
                    "SimpleConnectionPool": "A connection pool that can't be shared across different threads.",
                    "ThreadedConnectionPool": "A connection pool that works with the threading module.",
                }]],
                "simple_unguarded": [[{
                    "getconn is AbstractConnectionPool._getconn": True,
                    "putconn is AbstractConnectionPool._putconn": True,
                    "SimpleConnectionPool has a lock": False,
                    "ThreadedConnectionPool has a lock": True,
                }]],
                "simple_a_getconn": [[{"connections in use": 1}]],
                "simple_b_getconn": [[{"connections in use": 2, "a different connection from thread A's": True}]],
                "threaded_a_getconn": [[{"lock": ["thread_a: acquire", "thread_a: release"]}]],
                "threaded_b_getconn": [[{
                    "lock": ["thread_b: acquire", "thread_b: release"],
                    "a different connection from thread A's": True,
                }]],
                "a_locks_row": [[{"rows locked": 1}]],
                "b_locks_row": [[{"rows locked": 1}]],
                "a_commit_putconn": [[{"lock": ["thread_a: acquire", "thread_a: release"]}]],
                "b_commit_putconn": [[{"lock": ["thread_b: acquire", "thread_b: release"]}]],
            },
            "note": "the same at every level: A only locks the row and changes nothing, so B's waiting "
                    "FOR UPDATE goes on without a serialization failure even at REPEATABLE READ",
        },
    },
}

STEPS = {step["name"]: step for step in SCENARIO["steps"]}


class RecordingLock:
    """Stands in for ThreadedConnectionPool._lock: records who acquires and releases it, then delegates."""

    def __init__(self, lock, names: dict[int, str]) -> None:  # type: ignore[no-untyped-def]
        self._lock = lock
        self._names = names
        self.calls: list[str] = []

    def _who(self) -> str:
        return self._names.get(threading.get_ident(), "another thread")

    def acquire(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(f"{self._who()}: acquire")
        return self._lock.acquire(*args, **kwargs)

    def release(self) -> None:
        self.calls.append(f"{self._who()}: release")
        self._lock.release()

    def take_calls(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


def play(run) -> None:  # type: ignore[no-untyped-def]
    level = run.connection("thread_a").isolation_level  # the run's level, which txnlab set on each session
    names: dict[int, str] = {}  # thread ident -> session name, for the lock recorder
    simple = SimpleConnectionPool(0, 2, run.dsn)
    threaded = ThreadedConnectionPool(0, 2, run.dsn)
    recorder = threaded._lock = RecordingLock(threaded._lock, names)
    held = {}

    def call(name, function, on=None):  # type: ignore[no-untyped-def]
        step = STEPS[name]
        session = step["session"]

        def as_thread(conn):  # type: ignore[no-untyped-def]
            names[threading.get_ident()] = session
            return function(conn)

        run.call(session, name, step["sql"], as_thread, on=on)

    def docstrings(_own):  # type: ignore[no-untyped-def]
        return {
            "SimpleConnectionPool": SimpleConnectionPool.__doc__,
            "ThreadedConnectionPool": ThreadedConnectionPool.__doc__,
        }

    def simple_unguarded(_own):  # type: ignore[no-untyped-def]
        return {
            "getconn is AbstractConnectionPool._getconn": SimpleConnectionPool.getconn is AbstractConnectionPool._getconn,
            "putconn is AbstractConnectionPool._putconn": SimpleConnectionPool.putconn is AbstractConnectionPool._putconn,
            "SimpleConnectionPool has a lock": hasattr(simple, "_lock"),
            "ThreadedConnectionPool has a lock": hasattr(threaded, "_lock"),
        }

    def simple_getconn(key):  # type: ignore[no-untyped-def]
        def take(_own):  # type: ignore[no-untyped-def]
            conn = held[f"simple_{key}"] = simple.getconn()
            result = {"connections in use": len(simple._used)}
            if key == "b":
                result["a different connection from thread A's"] = conn is not held["simple_a"]
            return result
        return take

    def threaded_getconn(key):  # type: ignore[no-untyped-def]
        def take(_own):  # type: ignore[no-untyped-def]
            conn = held[key] = threaded.getconn()
            conn.set_session(isolation_level=level)
            result = {"lock": recorder.take_calls()}
            if key == "b":
                result["a different connection from thread A's"] = conn is not held["a"]
            return result
        return take

    def lock_row(conn):  # type: ignore[no-untyped-def]
        with conn.cursor() as cur:
            cur.execute(LOCK_ROW)
            return {"rows locked": len(cur.fetchall())}

    def commit_putconn(key):  # type: ignore[no-untyped-def]
        def finish(_own):  # type: ignore[no-untyped-def]
            held[key].commit()
            threaded.putconn(held[key])
            return {"lock": recorder.take_calls()}
        return finish

    try:
        call("docstrings", docstrings)
        call("simple_unguarded", simple_unguarded)
        call("simple_a_getconn", simple_getconn("a"))
        call("simple_b_getconn", simple_getconn("b"))
        call("threaded_a_getconn", threaded_getconn("a"))
        call("threaded_b_getconn", threaded_getconn("b"))
        run.watch("thread_a's pool connection", held["a"])
        run.watch("thread_b's pool connection", held["b"])
        call("a_locks_row", lock_row, on=held["a"])
        call("b_locks_row", lock_row, on=held["b"])
        call("a_commit_putconn", commit_putconn("a"), on=held["a"])
        call("b_commit_putconn", commit_putconn("b"), on=held["b"])
        run.finish()
    finally:
        threaded.closeall()
        simple.closeall()
