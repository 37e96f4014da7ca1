"""A connection per thread: two sessions, two independent transactions.

The counterpart of threads-shared-connection, with the same transfer and the same
audit line. Every step is plain SQL on the thread's own connection; `play` just
sends them in order (each on its session's own thread).
"""

from __future__ import annotations

SCENARIO = {
    "name": "threads-connection-per-thread",
    "title": "A connection per thread: B neither sees A's uncommitted debit nor commits it",
    "summary": (
        "The transfer of threads-shared-connection again, but now each thread has its own "
        "psycopg2 connection, which is its own database session served by its own server "
        "process. Thread A writes the debit line of a transfer from checking to savings. "
        "Thread B cannot see it: it is not committed, and PostgreSQL never shows "
        "uncommitted rows to another session, at any isolation level (READ UNCOMMITTED "
        "behaves as READ COMMITTED). B writes its audit line and commits: that commits B's "
        "transaction only, and B still finds no ledger line afterwards. When thread A "
        "cancels the transfer with rollback(), the debit disappears completely, so the "
        "books stay balanced. This is the first of the two patterns the psycopg2 "
        "documentation describes for threads ('creating a connection per thread'): "
        "the threads' transactions are independent, at the price of one connection (and "
        "one server process) each; a ThreadedConnectionPool keeps that price down "
        "(threads-pool-simple-vs-threaded). Every level behaves the same."
    ),
    "tags": ["threads", "psycopg2", "driver", "python", "fix"],
    "references": [
        "https://www.psycopg.org/docs/usage.html#thread-and-process-safety",
        "https://www.psycopg.org/docs/connection.html",
        "https://www.postgresql.org/docs/current/transaction-iso.html",
    ],
    "setup": (
        "CREATE TABLE ledger (account text NOT NULL, amount int NOT NULL);\n"
        "CREATE TABLE audit_log (thread text NOT NULL, event text NOT NULL);"
    ),
    "sessions": {"thread_a": {}, "thread_b": {}},
    "steps": [
        {"name": "a_debit", "session": "thread_a", "sql": "INSERT INTO ledger VALUES ('checking', -100)",
         "narration": "Thread A starts the transfer on its own connection; psycopg2 opens A's transaction."},
        {"name": "b_reads", "session": "thread_b", "sql": "SELECT account, amount FROM ledger",
         "narration": "Thread B, on its own connection, does not see A's uncommitted debit."},
        {"name": "b_audit", "session": "thread_b", "sql": "INSERT INTO audit_log VALUES ('thread_b', 'report sent')"},
        {"name": "b_commit", "session": "thread_b", "sql": "COMMIT",
         "narration": "B's commit() ends B's transaction and nothing else."},
        {"name": "b_reads_again", "session": "thread_b", "sql": "SELECT account, amount FROM ledger",
         "narration": "A new transaction for B, and still no debit: A's transaction is open, untouched."},
        {"name": "a_rollback", "session": "thread_a", "sql": "ROLLBACK",
         "narration": "Thread A cancels the transfer; its rollback() undoes the debit."},
    ],
    "invariants": {
        "transfer_all_or_nothing": "SELECT coalesce(sum(amount), 0) = 0 FROM ledger",
        "audit_line_kept": "SELECT count(*) = 1 FROM audit_log",
    },
    "anomaly": {
        "name": "half a transfer committed",
        "observed_if": [{"invariant": "transfer_all_or_nothing", "holds": False}],
    },
    "expect": {
        "all": {
            "rows": {"b_reads": [], "b_reads_again": []},
            "invariants": {"transfer_all_or_nothing": True, "audit_line_kept": True},
            "anomaly": False,
            "note": "the same at every level: two connections are two sessions with two transactions, and no "
                    "level shows another session's uncommitted rows",
        },
    },
}


def play(run) -> None:  # type: ignore[no-untyped-def]
    for step in SCENARIO["steps"]:
        run.step(step["name"])
