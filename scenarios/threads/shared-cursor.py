"""Two threads, one cursor: each execute() replaces the cursor's result set.

A Python scenario. The steps take turns on one psycopg2 cursor of thread_a's
connection (thread B's steps run on thread B's thread), and each fetch records
exactly what it returned, plus the column name the cursor then describes.
"""

from __future__ import annotations

import _thread_calls as tc  # run.call() for a declared step; a connection's transaction status

SCENARIO = {
    "name": "threads-shared-cursor",
    "title": "Two threads sharing a cursor: thread A fetches thread B's rows, and B fetches nothing",
    "summary": (
        "psycopg2 connections may be shared between threads; cursors may not. The "
        "documentation says so plainly: 'Cursors are not thread safe: a multithread "
        "application can create many cursors from the same connection and should use "
        "each cursor from a single thread.' Here is what goes wrong when they share one. "
        "A client-side cursor keeps exactly one result set, the one from its last "
        "execute(). Thread A runs a query for three rows and fetches the first. Thread B "
        "then runs its own query on the same cursor. When thread A fetches the rest of "
        "its rows it gets B's row instead, under B's column name: its own result set was "
        "silently replaced, and no error is raised. When thread B fetches, nothing is "
        "left: A consumed its row. Two wrong answers, no exception. The fix costs nothing: "
        "one cursor per thread on the same connection. Run the same way, each thread "
        "fetches exactly its own rows. (The two threads still share one transaction, as "
        "in threads-shared-connection.) The cursor's behaviour does not depend on the "
        "isolation level, and every step here only reads: every level behaves the same."
    ),
    "tags": ["threads", "psycopg2", "driver", "python", "cursor"],
    "references": [
        "https://www.psycopg.org/docs/cursor.html",
        "https://www.psycopg.org/docs/usage.html#thread-and-process-safety",
        "https://www.psycopg.org/docs/connection.html",
    ],
    "setup": "CREATE TABLE numbers (n int PRIMARY KEY);\nINSERT INTO numbers VALUES (1), (2), (3);",
    "sessions": {"thread_a": {}, "thread_b": {}},
    "steps": [
        {"name": "a_execute", "session": "thread_a",
         "sql": "shared_cur.execute(\"SELECT n AS a_number FROM numbers ORDER BY n\")",
         "narration": "Thread A runs its query; psycopg2 receives all three rows and keeps them in the cursor."},
        {"name": "a_fetch_first", "session": "thread_a", "sql": "shared_cur.fetchone()",
         "narration": "Thread A reads its first row."},
        {"name": "b_execute", "session": "thread_b",
         "sql": "shared_cur.execute(\"SELECT 'hello from b' AS b_greeting\")",
         "narration": "Thread B runs its own query on the same cursor. The cursor drops A's remaining rows and "
                      "keeps B's result instead."},
        {"name": "a_fetch_rest", "session": "thread_a", "sql": "shared_cur.fetchall()",
         "narration": "Thread A expects rows 2 and 3 and gets B's row, described by B's column name."},
        {"name": "b_fetch", "session": "thread_b", "sql": "shared_cur.fetchall()",
         "narration": "Thread B finds nothing: A took its row."},
        {"name": "a_own_execute", "session": "thread_a",
         "sql": "cur_a = conn.cursor(); cur_a.execute(\"SELECT n AS a_number FROM numbers ORDER BY n\")",
         "narration": "The fix: each thread opens its own cursor on the same connection."},
        {"name": "a_own_fetch_first", "session": "thread_a", "sql": "cur_a.fetchone()"},
        {"name": "b_own_execute", "session": "thread_b",
         "sql": "cur_b = conn.cursor(); cur_b.execute(\"SELECT 'hello from b' AS b_greeting\")"},
        {"name": "a_own_fetch_rest", "session": "thread_a", "sql": "cur_a.fetchall()",
         "narration": "Thread A's rows are untouched by B's query."},
        {"name": "b_own_fetch", "session": "thread_b", "sql": "cur_b.fetchall()"},
    ],
    "expect": {
        "all": {
            "rows": {
                "a_execute": [[{"rows": 3}]],
                "a_fetch_first": [[{"fetched": [1], "column": "a_number"}]],
                "b_execute": [[{"rows": 1}]],
                "a_fetch_rest": [[{"fetched": [["hello from b"]], "column": "b_greeting"}]],
                "b_fetch": [[{"fetched": [], "column": "b_greeting"}]],
                "a_own_execute": [[{"rows": 3}]],
                "a_own_fetch_first": [[{"fetched": [1], "column": "a_number"}]],
                "b_own_execute": [[{"rows": 1}]],
                "a_own_fetch_rest": [[{"fetched": [[2], [3]], "column": "a_number"}]],
                "b_own_fetch": [[{"fetched": [["hello from b"]], "column": "b_greeting"}]],
            },
            "note": "the same at every level: a cursor holds the result of its last execute(), whichever thread "
                    "called it",
        },
    },
}

def play(run) -> None:  # type: ignore[no-untyped-def]
    conn = run.connection("thread_a")
    shared_cur = conn.cursor()
    cursors = {"shared": shared_cur}
    call = tc.declared_caller(run, SCENARIO, on=conn)

    def column(cur) -> str:  # type: ignore[no-untyped-def]
        return cur.description[0].name if cur.description else None

    def execute(which, sql):  # type: ignore[no-untyped-def]
        def run_query(connection):  # type: ignore[no-untyped-def]
            if which not in cursors:  # a cursor of this thread's own, opened on this thread
                cursors[which] = connection.cursor()
            cur = cursors[which]
            cur.execute(sql)
            return {"rows": cur.rowcount}
        return run_query

    def fetchone(which):  # type: ignore[no-untyped-def]
        def fetch(_conn):  # type: ignore[no-untyped-def]
            cur = cursors[which]
            row = cur.fetchone()
            return {"fetched": list(row) if row is not None else None, "column": column(cur)}
        return fetch

    def fetchall(which):  # type: ignore[no-untyped-def]
        def fetch(_conn):  # type: ignore[no-untyped-def]
            cur = cursors[which]
            return {"fetched": [list(row) for row in cur.fetchall()], "column": column(cur)}
        return fetch

    a_query = "SELECT n AS a_number FROM numbers ORDER BY n"
    b_query = "SELECT 'hello from b' AS b_greeting"
    try:
        call("a_execute", execute("shared", a_query))
        call("a_fetch_first", fetchone("shared"))
        call("b_execute", execute("shared", b_query))
        call("a_fetch_rest", fetchall("shared"))
        call("b_fetch", fetchall("shared"))
        call("a_own_execute", execute("a", a_query))
        call("a_own_fetch_first", fetchone("a"))
        call("b_own_execute", execute("b", b_query))
        call("a_own_fetch_rest", fetchall("a"))
        call("b_own_fetch", fetchall("b"))
        run.finish()
    finally:
        for cur in cursors.values():
            cur.close()
