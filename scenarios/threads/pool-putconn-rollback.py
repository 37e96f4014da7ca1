"""putconn() of a connection in the middle of a transaction: the pool rolls the work back.

A Python scenario with `capture: true`: the pool's connections are opened from
`run.dsn`, so they go through txnlab's wire tap too, and the "sent" line of each step
shows what the pool itself put on the wire. (They are deliberately not registered
with run.watch: nothing here waits for a lock, and under capture a watched
connection's messages are not shown.)
"""

from __future__ import annotations

from psycopg2.pool import ThreadedConnectionPool

import _thread_calls as tc  # run.call() for a declared step; a connection's transaction status

SCENARIO = {
    "name": "threads-pool-putconn-rollback",
    "title": "putconn() in the middle of a transaction rolls it back: the pool sends ROLLBACK, never COMMIT",
    "summary": (
        "Thread A takes a connection from a psycopg2 ThreadedConnectionPool, sets it to "
        "the run's isolation level as the 2017 blog's transaction() helper does, and "
        "inserts an order. Then it hands the connection back with pool.putconn() without "
        "calling commit(), as code does when an exception skips the commit. The pool does "
        "not commit for you: before keeping the connection it calls conn.rollback(), and "
        "the captured wire traffic shows the ROLLBACK it sent. Thread B then gets the "
        "very same connection, clean and idle, and cannot find A's order: it is gone for "
        "good. That clean-up is why a pooled connection never carries one thread's "
        "half-finished transaction into another thread's work. B's read opened a "
        "transaction too (psycopg2 always does), so B's putconn() rolls that back as "
        "well. One detail of psycopg2's pool code: when the pool already holds minconn "
        "idle connections it closes the returned connection instead of keeping it, and "
        "sends no ROLLBACK; the server then discards the open transaction as the session "
        "ends, so the work is lost just the same (not shown here, because the server's "
        "view right after a close depends on how fast the backend exits). Every level "
        "behaves the same; only the BEGIN the driver sends names the level."
    ),
    "tags": ["threads", "psycopg2", "driver", "python", "pool", "rollback"],
    "references": [
        "https://www.psycopg.org/docs/pool.html",
        "https://www.psycopg.org/docs/connection.html#connection.rollback",
        "https://www.psycopg.org/docs/usage.html#transactions-control",
    ],
    "capture": True,
    "setup": "CREATE TABLE orders (id int PRIMARY KEY, placed_by text NOT NULL);",
    "sessions": {"thread_a": {}, "thread_b": {}},
    "steps": [
        {"name": "a_getconn", "session": "thread_a",
         "sql": "conn = pool.getconn(); conn.set_session(isolation_level=<the run's level>)",
         "narration": "Thread A takes the connection the pool opened when it was created (minconn=1)."},
        {"name": "a_insert", "session": "thread_a",
         "sql": "conn.cursor().execute(\"INSERT INTO orders VALUES (1, 'thread_a')\")",
         "narration": "psycopg2 sends BEGIN (naming the level) and the INSERT: A's transaction is open."},
        {"name": "a_putconn", "session": "thread_a", "sql": "pool.putconn(conn)  # no commit()",
         "narration": "Thread A gives the connection back without committing. The pool keeps it, but first "
                      "rolls the transaction back: see the ROLLBACK it sent."},
        {"name": "b_getconn", "session": "thread_b", "sql": "conn = pool.getconn()",
         "narration": "Thread B gets the same connection, idle: nothing of A's transaction is left on it."},
        {"name": "b_reads", "session": "thread_b",
         "sql": "conn.cursor().execute(\"SELECT count(*) FROM orders\")",
         "narration": "A's order is not there; B's read has opened a new transaction."},
        {"name": "b_putconn", "session": "thread_b", "sql": "pool.putconn(conn)",
         "narration": "B's read-only transaction is open, so the pool rolls it back too."},
    ],
    "invariants": {
        "a_order_gone": "SELECT count(*) = 0 FROM orders",
    },
    "expect": {
        "all": {
            "rows": {
                "a_getconn": [[{"connection": "idle"}]],
                "a_insert": [[{"rows inserted": 1, "connection": "in transaction"}]],
                "a_putconn": [[{"kept by the pool": True, "connection": "idle"}]],
                "b_getconn": [[{"the connection thread A returned": True, "connection": "idle"}]],
                "b_reads": [[{"count": 0, "connection": "in transaction"}]],
                "b_putconn": [[{"kept by the pool": True, "connection": "idle"}]],
            },
            "invariants": {"a_order_gone": True},
            "note": "the same at every level: putconn() never commits; the pool rolls the open transaction "
                    "back before it keeps the connection",
        },
    },
}

def play(run) -> None:  # type: ignore[no-untyped-def]
    level = run.connection("thread_a").isolation_level  # the run's level, which txnlab set on each session
    pool = ThreadedConnectionPool(1, 2, run.dsn)
    held = {}
    call = tc.declared_caller(run, SCENARIO)
    status = tc.transaction_status  # the pooled connection's, not the session's own

    def a_getconn(_own):  # type: ignore[no-untyped-def]
        conn = held["a"] = pool.getconn()
        conn.set_session(isolation_level=level)
        return {"connection": status(conn)}

    def a_insert(_own):  # type: ignore[no-untyped-def]
        conn = held["a"]
        with conn.cursor() as cur:
            cur.execute("INSERT INTO orders VALUES (1, 'thread_a')")
            return {"rows inserted": cur.rowcount, "connection": status(conn)}

    def putconn(key):  # type: ignore[no-untyped-def]
        def give_back(_own):  # type: ignore[no-untyped-def]
            conn = held[key]
            pool.putconn(conn)
            kept = any(conn is idle for idle in pool._pool)  # the pool's list of idle connections
            return {"kept by the pool": kept, "connection": "closed" if conn.closed else status(conn)}
        return give_back

    def b_getconn(_own):  # type: ignore[no-untyped-def]
        conn = held["b"] = pool.getconn()
        return {"the connection thread A returned": conn is held["a"], "connection": status(conn)}

    def b_reads(_own):  # type: ignore[no-untyped-def]
        conn = held["b"]
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM orders")
            return {"count": cur.fetchone()[0], "connection": status(conn)}

    try:
        call("a_getconn", a_getconn)
        call("a_insert", a_insert)
        call("a_putconn", putconn("a"))
        call("b_getconn", b_getconn)
        call("b_reads", b_reads)
        call("b_putconn", putconn("b"))
        run.finish()
    finally:
        pool.closeall()
