"""An exhausted psycopg2 pool raises PoolError at once; it does not wait for a connection.

A Python scenario: three threads share one ThreadedConnectionPool(minconn=1, maxconn=2).

About the failing step: txnlab records an exception raised by a step as the step's
error, but `expect: errors:` can only name a SQLSTATE, and PoolError is raised by
psycopg2's Python code, not by the server, so it has none. The step therefore catches
PoolError (and only PoolError) and returns its class and message as its result,
which the expectation checks word for word.
"""

from __future__ import annotations

from psycopg2.pool import PoolError, ThreadedConnectionPool

import _thread_calls as tc  # run.call() for a declared step; a connection's transaction status

SCENARIO = {
    "name": "threads-pool-exhausted",
    "title": "The third thread asking a maxconn=2 pool for a connection gets PoolError at once",
    "summary": (
        "Three threads share a psycopg2 ThreadedConnectionPool created with minconn=1 "
        "and maxconn=2. Thread A gets the connection the pool opened at start-up; thread "
        "B gets a second one, which the pool opens on demand. Thread C asks for a third "
        "while A and B still hold theirs: getconn() raises psycopg2.pool.PoolError "
        "('connection pool exhausted') immediately. psycopg2's pools never wait for a "
        "connection to come back, so an application with more threads than maxconn must "
        "catch PoolError and retry, or use a pool that queues callers (psycopg 3's "
        "psycopg_pool does, with a timeout). As soon as thread A commits and returns its "
        "connection, C's second attempt succeeds and gets that very connection. The "
        "'connections' here are client-side bookkeeping, not server sessions in a "
        "transaction, so the isolation level plays no part: every level behaves the same."
    ),
    "tags": ["threads", "psycopg2", "driver", "python", "pool"],
    "references": [
        "https://www.psycopg.org/docs/pool.html",
        "https://www.psycopg.org/psycopg3/docs/advanced/pool.html",
    ],
    "setup": (
        "CREATE TABLE jobs (id int PRIMARY KEY, done_by text);\n"
        "INSERT INTO jobs VALUES (1, NULL), (2, NULL);"
    ),
    "sessions": {"thread_a": {}, "thread_b": {}, "thread_c": {}},
    "steps": [
        {"name": "a_getconn", "session": "thread_a",
         "sql": "conn_a = pool.getconn(); conn_a.set_session(isolation_level=<the run's level>)",
         "narration": "The pool opened one connection when it was created (minconn=1); A gets it. (Every "
                      "connection taken from the pool is set to the run's level, as the blog's transaction() "
                      "helper does.)"},
        {"name": "a_work", "session": "thread_a",
         "sql": "conn_a: UPDATE jobs SET done_by = 'thread_a' WHERE id = 1"},
        {"name": "b_getconn", "session": "thread_b", "sql": "conn_b = pool.getconn()",
         "narration": "No idle connection is left: the pool opens a second one, its maximum."},
        {"name": "c_getconn", "session": "thread_c", "sql": "conn_c = pool.getconn()",
         "narration": "Both connections are in use: getconn() raises PoolError without waiting. (The step "
                      "catches PoolError and returns its class and message.)"},
        {"name": "a_done", "session": "thread_a", "sql": "conn_a.commit(); pool.putconn(conn_a)",
         "narration": "Thread A finishes its job and returns its connection."},
        {"name": "c_getconn_again", "session": "thread_c", "sql": "conn_c = pool.getconn()  # retry",
         "narration": "Thread C tries again and gets the connection A just returned."},
        {"name": "b_putconn", "session": "thread_b", "sql": "pool.putconn(conn_b)"},
        {"name": "c_putconn", "session": "thread_c", "sql": "pool.putconn(conn_c)"},
    ],
    "invariants": {
        "a_job_done": "SELECT done_by = 'thread_a' FROM jobs WHERE id = 1",
    },
    "expect": {
        "all": {
            "rows": {
                "a_getconn": [[{"connections in use": 1}]],
                "a_work": [[1]],
                "b_getconn": [[{"connections in use": 2, "a new connection": True}]],
                "c_getconn": [[{"raised": "psycopg2.pool.PoolError", "message": "connection pool exhausted"}]],
                "c_getconn_again": [[{"connections in use": 2, "the connection thread A returned": True}]],
                "b_putconn": [[{"connections in use": 1}]],
                "c_putconn": [[{"connections in use": 0}]],
            },
            "invariants": {"a_job_done": True},
            "note": "the same at every level: the limit is the pool's own count of connections handed out, "
                    "and getconn() refuses at once instead of waiting",
        },
    },
}

def play(run) -> None:  # type: ignore[no-untyped-def]
    level = run.connection("thread_a").isolation_level  # the run's level, which txnlab set on each session
    pool = ThreadedConnectionPool(1, 2, run.dsn)
    held = {}
    call = tc.declared_caller(run, SCENARIO)

    def take() -> object:
        conn = pool.getconn()
        conn.set_session(isolation_level=level)
        return conn

    def in_use() -> int:
        return len(pool._used)  # the pool's map of connections handed out

    def a_getconn(_own):  # type: ignore[no-untyped-def]
        held["a"] = take()
        return {"connections in use": in_use()}

    def a_work(_own):  # type: ignore[no-untyped-def]
        with held["a"].cursor() as cur:
            cur.execute("UPDATE jobs SET done_by = 'thread_a' WHERE id = 1")
            return cur.rowcount

    def b_getconn(_own):  # type: ignore[no-untyped-def]
        held["b"] = take()
        return {"connections in use": in_use(), "a new connection": held["b"] is not held["a"]}

    def c_getconn(_own):  # type: ignore[no-untyped-def]
        try:
            held["c"] = take()
        except PoolError as exc:
            return {"raised": f"{type(exc).__module__}.{type(exc).__name__}", "message": str(exc)}
        return {"connections in use": in_use()}

    def a_done(_own):  # type: ignore[no-untyped-def]
        held["a"].commit()
        pool.putconn(held["a"])

    def c_getconn_again(_own):  # type: ignore[no-untyped-def]
        held["c"] = take()
        return {"connections in use": in_use(), "the connection thread A returned": held["c"] is held["a"]}

    def putconn(key):  # type: ignore[no-untyped-def]
        def give_back(_own):  # type: ignore[no-untyped-def]
            pool.putconn(held[key])
            return {"connections in use": in_use()}
        return give_back

    try:
        call("a_getconn", a_getconn)
        call("a_work", a_work)
        call("b_getconn", b_getconn)
        call("c_getconn", c_getconn)
        call("a_done", a_done)
        call("c_getconn_again", c_getconn_again)
        call("b_putconn", putconn("b"))
        call("c_putconn", putconn("c"))
        run.finish()
    finally:
        pool.closeall()
