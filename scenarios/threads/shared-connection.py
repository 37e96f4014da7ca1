"""Two threads, one psycopg2 connection: one transaction, whoever commits it.

A Python scenario, because the lesson is about threads: thread_b's steps run on
thread_b's own thread but with thread_a's connection (`run.call(..., on=...)`),
exactly what an application does when it keeps one global connection for all its
worker threads. Each thread opens its own cursor, as the psycopg2 documentation
recommends; that is enough for the statements to be safe, and not enough to keep
the two threads' work apart.
"""

from __future__ import annotations

import threading

import _thread_calls as tc  # run.call() for a declared step; a connection's transaction status

SCENARIO = {
    "name": "threads-shared-connection",
    "title": "Two threads sharing one connection share one transaction: B's commit commits A's half-done work",
    "summary": (
        "An application keeps one psycopg2 connection and lets all its threads use it. "
        "Thread A starts a transfer of 100 from checking to savings: it writes the debit "
        "line and is about to write the credit line. Meanwhile thread B, on the same "
        "connection but with a cursor of its own, writes an audit line and calls "
        "conn.commit(). Nothing fails: psycopg2 connections are thread-safe and may be "
        "shared between threads (its documentation says so, and so does the DB-API's "
        "'level 2' thread safety). But a connection is one database session, and a "
        "session has one transaction: thread B sees A's uncommitted debit, and B's "
        "commit() makes it permanent. Thread C, on a connection of its own, sees the "
        "debit appear at that moment. When thread A then decides to cancel the transfer "
        "and calls rollback(), there is nothing left to roll back: half a transfer is in "
        "the books. Sharing a connection is safe for the driver, not for your "
        "transactions; give each thread its own connection (threads-connection-per-thread) "
        "or its own from a ThreadedConnectionPool (threads-pool-simple-vs-threaded). "
        "The isolation level plays no part, since all of this happens inside a single "
        "transaction: every level behaves the same."
    ),
    "tags": ["threads", "psycopg2", "driver", "python", "blog"],
    "references": [
        "https://www.psycopg.org/docs/usage.html#thread-and-process-safety",
        "https://www.psycopg.org/docs/connection.html",
        "https://www.psycopg.org/docs/usage.html#transactions-control",
        "https://peps.python.org/pep-0249/#threadsafety",
        "https://bbengfort.github.io/2017/12/psycopg2-transactions/",
    ],
    "setup": (
        "CREATE TABLE ledger (account text NOT NULL, amount int NOT NULL);\n"
        "CREATE TABLE audit_log (thread text NOT NULL, event text NOT NULL);"
    ),
    "sessions": {
        "thread_a": {},
        "thread_b": {},
        "thread_c": {"autocommit": True},
    },
    "steps": [
        {"name": "a_debit", "session": "thread_a",
         "sql": "thread A, its connection, its own cursor: INSERT INTO ledger VALUES ('checking', -100)",
         "narration": "Thread A starts the transfer with the debit line. psycopg2 opens a transaction "
                      "(BEGIN) on the connection, which from now on both threads use."},
        {"name": "c_before_b_commit", "session": "thread_c", "sql": "SELECT account, amount FROM ledger",
         "narration": "Thread C has a connection of its own (autocommit, so each SELECT sees the latest "
                      "committed data). The debit is not committed, so C sees nothing."},
        {"name": "b_reads", "session": "thread_b",
         "sql": "thread B, thread A's connection, a cursor of its own: SELECT account, amount FROM ledger",
         "narration": "Thread B runs on a different thread (the result checks it) but on the same "
                      "connection, so inside the same transaction: it sees A's uncommitted debit. No error: "
                      "psycopg2 lets any thread use a connection."},
        {"name": "b_audit", "session": "thread_b",
         "sql": "thread B, thread A's connection: INSERT INTO audit_log VALUES ('thread_b', 'report sent')",
         "narration": "Thread B writes its own work, an audit line."},
        {"name": "b_commit", "session": "thread_b", "sql": "thread B, thread A's connection: conn.commit()",
         "narration": "Thread B commits what it believes is its own work. commit() belongs to the "
                      "connection, not to a thread or a cursor: it commits the session's transaction, "
                      "A's debit included."},
        {"name": "c_after_b_commit", "session": "thread_c", "sql": "SELECT account, amount FROM ledger",
         "narration": "Thread C now sees the debit: it was committed by thread B."},
        {"name": "a_rollback", "session": "thread_a", "sql": "ROLLBACK",
         "narration": "Thread A finds that the savings account is closed and cancels its transfer with "
                      "conn.rollback(). The transaction it started is gone, committed by B; rollback() "
                      "ends an empty one. The debit stays."},
    ],
    "invariants": {
        "transfer_all_or_nothing": "SELECT coalesce(sum(amount), 0) = 0 FROM ledger",
        "audit_line_kept": "SELECT count(*) = 1 FROM audit_log",
    },
    "anomaly": {
        "name": "half a transfer committed",
        "observed_if": [{"invariant": "transfer_all_or_nothing", "holds": False}],
    },
    "claim": {
        "says": "psycopg2 connections cannot be shared between threads",
        "source": '"Transaction Handling with Psycopg2" (2017)',
        "level": "rc",
        # If a second thread could not use the connection, thread B's commit() on it
        # could not have committed thread A's debit, and thread C would find no row.
        "true_if": [{"step": "c_after_b_commit", "rows": []}],
        "holds": False,
    },
    "expect": {
        "all": {
            "rows": {
                "a_debit": [[1]],
                "c_before_b_commit": [],
                "b_reads": [[{"same thread as thread_a": False, "rows": [["checking", -100]]}]],
                "b_audit": [[{"rows inserted": 1, "shared connection": "in transaction"}]],
                "b_commit": [[{"shared connection": "idle"}]],
                "c_after_b_commit": [["checking", -100]],
            },
            "invariants": {"transfer_all_or_nothing": False, "audit_line_kept": True},
            "anomaly": True,
            "note": "the same at every level: both threads work inside one transaction, so B's commit "
                    "commits A's debit and A's rollback comes too late",
        },
    },
}

# The timeline's [status] under a step is that of the session's own connection, so
# thread B's steps report the shared connection's status (tc.transaction_status) in their result.
status = tc.transaction_status


def play(run) -> None:  # type: ignore[no-untyped-def]
    shared = run.connection("thread_a")  # the application's one connection
    thread_of = {}
    call = tc.declared_caller(run, SCENARIO, on=shared)

    def a_debit(conn):  # type: ignore[no-untyped-def]
        thread_of["a"] = threading.get_ident()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO ledger VALUES ('checking', -100)")
            return cur.rowcount

    def b_reads(conn):  # type: ignore[no-untyped-def]
        with conn.cursor() as cur:
            cur.execute("SELECT account, amount FROM ledger")
            rows = [list(row) for row in cur.fetchall()]
        return {"same thread as thread_a": threading.get_ident() == thread_of["a"], "rows": rows}

    def b_audit(conn):  # type: ignore[no-untyped-def]
        with conn.cursor() as cur:
            cur.execute("INSERT INTO audit_log VALUES ('thread_b', 'report sent')")
            return {"rows inserted": cur.rowcount, "shared connection": status(conn)}

    def b_commit(conn):  # type: ignore[no-untyped-def]
        conn.commit()
        return {"shared connection": status(conn)}

    call("a_debit", a_debit)
    run.step("c_before_b_commit")
    call("b_reads", b_reads)
    call("b_audit", b_audit)
    call("b_commit", b_commit)
    run.step("c_after_b_commit")
    run.step("a_rollback")
