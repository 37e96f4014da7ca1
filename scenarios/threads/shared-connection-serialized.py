"""Threads sharing a connection take turns: psycopg2 holds a per-connection lock
for the whole time a statement runs.

A Python scenario. The threads record the order in which they called
cursor.execute() and how long thread A spent in it; the server says what it is
running on the shared connection while both threads are inside execute(), and
stamps the moment thread A's statement finally reaches it.

How it stays deterministic: txnlab sends the next step only once every step in
flight has finished or is waiting for a lock on the server. So the statement that
keeps the connection busy must be one that waits for a lock (thread_c's row lock):
a `pg_sleep()` would simply finish before thread A's step is even sent, and prove
nothing. Thread C releases the lock only after thread A has entered execute() and
100 ms more have passed (bounded: it gives up waiting after 2 s and says so).
"""

from __future__ import annotations

import threading
import time

import _thread_calls as tc  # run.call() for a declared step; a connection's transaction status

HOLD_SECONDS = 0.1  # how long thread C keeps the lock after thread A has called execute()
ENTER_TIMEOUT = 2.0  # bound on waiting for thread A to reach execute()

LOCKING_READ = "SELECT stock FROM items WHERE id = 1 FOR UPDATE"

SCENARIO = {
    "name": "threads-shared-connection-serialized",
    "title": "Statements of threads sharing a connection run one at a time: one slow statement stalls every thread",
    "summary": (
        "Two threads share one psycopg2 connection, each with its own cursor. The "
        "psycopg2 documentation says that their commands 'will be serialized'. The "
        "mechanism is a lock inside the connection object: cursor.execute() takes it "
        "before sending the query and keeps it until the server has answered. Here "
        "thread B's statement has to wait for a row lock that thread C "
        "(another connection) holds. While it waits, thread A calls execute() for a "
        "trivial SELECT that needs no lock at all, and it waits too: pg_stat_activity "
        "shows that the server is running only B's statement on that connection; A's "
        "has not even been sent. Only when C commits does B's statement finish, and then "
        "A's goes out: the server stamps its arrival after C's look, and A has spent at "
        "least the 100 ms that C held on inside execute(). Sharing a connection is safe, "
        "but it makes the threads queue for it: one slow or blocked statement stalls "
        "every thread that uses the connection. "
        "txnlab reports A's step as waiting for thread_c because A waits for the shared "
        "connection's backend, which waits for C. Thread C only locks the row (no "
        "update), so even at REPEATABLE READ and SERIALIZABLE the waiting statement "
        "goes ahead once C commits: every level behaves the same."
    ),
    "tags": ["threads", "psycopg2", "driver", "python", "locks"],
    "references": [
        "https://www.psycopg.org/docs/usage.html#thread-and-process-safety",
        "https://www.psycopg.org/docs/connection.html",
        "https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW",
        "https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE",
    ],
    "setup": (
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, stock int NOT NULL);\n"
        "INSERT INTO items VALUES (1, 'widget', 10), (2, 'gadget', 4);"
    ),
    "sessions": {"thread_a": {}, "thread_b": {}, "thread_c": {}},
    "steps": [
        {"name": "c_lock", "session": "thread_c", "sql": LOCKING_READ,
         "narration": "Thread C, with a connection of its own, locks item 1 while it edits it."},
        {"name": "b_locking_read", "session": "thread_b",
         "sql": f"thread B, thread A's connection: cur.execute(\"{LOCKING_READ}\")",
         "narration": "Thread B wants the same row lock and waits for thread C. While its statement runs, "
                      "psycopg2 holds the shared connection's lock."},
        {"name": "a_count", "session": "thread_a",
         "sql": "thread A, its connection: cur.execute(\"SELECT count(*), statement_timestamp() FROM items\")",
         "narration": "Thread A's statement needs no lock on the server, but execute() cannot send it "
                      "while B's statement occupies the connection: A waits inside psycopg2."},
        {"name": "c_looks", "session": "thread_c",
         "sql": "thread C: SELECT state, wait_event_type, query, clock_timestamp() FROM pg_stat_activity "
                "WHERE pid = <the shared connection's backend>",
         "narration": "Once thread A is inside execute() (plus 100 ms), thread C asks the server what the "
                      "shared connection is doing: it is running B's statement, waiting for a lock. A's "
                      "statement is nowhere on the server."},
        {"name": "c_commit", "session": "thread_c", "sql": "COMMIT",
         "narration": "Thread C commits and releases the row lock. B's statement finishes; only then can "
                      "A's statement go out, and it finishes right after."},
        {"name": "order", "session": "thread_a",
         "sql": "what the threads recorded around their cursor.execute() calls",
         "narration": "The evidence, recorded by the threads and the server: B called execute() first, then "
                      "A; the server received A's statement (its statement_timestamp()) only after thread C "
                      "had looked at pg_stat_activity; and A spent at least the 100 ms that C held on inside "
                      "execute()."},
    ],
    "expect": {
        "all": {
            "blocked": ["b_locking_read", "a_count"],
            "rows": {
                "c_lock": [[10]],
                "c_looks": [[["active", "Lock", LOCKING_READ]]],
                "b_locking_read": [[10]],
                "a_count": [[2]],
                "order": [[{
                    "execute() called by": ["thread_b", "thread_a"],
                    "thread_a's statement reached the server after thread_c looked": True,
                    "thread_a waited in execute() at least 100 ms": True,
                }]],
            },
            "note": "the same at every level: the waiting is psycopg2's per-connection lock (and thread C's "
                    "row lock, which is only taken, never updated, so no level raises 40001)",
        },
    },
}

def play(run) -> None:  # type: ignore[no-untyped-def]
    shared = run.connection("thread_a")
    shared_pid = shared.get_backend_pid()
    callers: list[str] = []  # who called cursor.execute(), in order
    seen: dict[str, object] = {}  # server clock readings and thread A's wait
    a_calls_execute = threading.Event()
    call = tc.declared_caller(run, SCENARIO)

    def b_locking_read(conn):  # type: ignore[no-untyped-def]
        with conn.cursor() as cur:
            callers.append("thread_b")
            cur.execute(LOCKING_READ)
            return cur.fetchone()[0]

    def a_count(conn):  # type: ignore[no-untyped-def]
        with conn.cursor() as cur:
            callers.append("thread_a")
            a_calls_execute.set()
            started = time.perf_counter()
            cur.execute("SELECT count(*), statement_timestamp() FROM items")
            seen["a_waited"] = time.perf_counter() - started
            count, seen["a_received"] = cur.fetchone()
            return count

    def c_looks(conn):  # type: ignore[no-untyped-def]
        if not a_calls_execute.wait(ENTER_TIMEOUT):
            return "thread A never called execute()"
        time.sleep(HOLD_SECONDS)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT state, wait_event_type, query, clock_timestamp() FROM pg_stat_activity WHERE pid = %s",
                [shared_pid],
            )
            state, wait, query, seen["c_looked"] = cur.fetchone()
            return [state, wait, query]

    def order(conn):  # type: ignore[no-untyped-def]
        received, looked = seen.get("a_received"), seen.get("c_looked")
        return {
            "execute() called by": list(callers),
            "thread_a's statement reached the server after thread_c looked": (
                received is not None and looked is not None and received > looked
            ),
            "thread_a waited in execute() at least 100 ms": float(seen.get("a_waited", 0.0)) >= HOLD_SECONDS,
        }

    run.step("c_lock")
    call("b_locking_read", b_locking_read, on=shared)
    call("a_count", a_count)
    call("c_looks", c_looks)
    run.step("c_commit")
    call("order", order)
