"""One thread's error aborts the transaction of every thread sharing the connection.

A Python scenario: thread_b's steps run on thread_b's thread with thread_a's
connection (`run.call(..., on=...)`), as in threads-shared-connection.
"""

from __future__ import annotations

import _thread_calls as tc  # run.call() for a declared step; a connection's transaction status

SCENARIO = {
    "name": "threads-shared-connection-error",
    "title": "A CHECK violation in thread A makes thread B's next statement fail with 25P02 on the shared connection",
    "summary": (
        "Two threads share one psycopg2 connection, each with its own cursor. Thread B "
        "starts a report and writes an audit line. Thread A, in the middle of that, "
        "tries to withdraw 500 from an account holding 100; the UPDATE breaks "
        "CHECK (balance >= 0) and fails with SQLSTATE 23514 (psycopg2.errors.CheckViolation). "
        "That error aborts the connection's transaction, and the transaction is B's too: "
        "B's next statement, which has nothing wrong with it, fails with 25P02 "
        "(InFailedSqlTransaction, 'current transaction is aborted, commands ignored until "
        "end of transaction block'). B has to roll back, which also throws away the audit "
        "line it wrote before A's mistake. After the rollback the connection works again "
        "for everybody. Thread B cannot tell from its own code why it failed: the cause "
        "is in another thread. The psycopg2 documentation describes this: cursors of one "
        "connection share its transaction, and a failed command stops every further one "
        "until rollback(). No isolation level changes this, so every level behaves the same."
    ),
    "tags": ["threads", "psycopg2", "driver", "python", "error-handling"],
    "references": [
        "https://www.psycopg.org/docs/usage.html#thread-and-process-safety",
        "https://www.psycopg.org/docs/usage.html#transactions-control",
        "https://www.psycopg.org/docs/connection.html",
        "https://www.postgresql.org/docs/current/errcodes-appendix.html",
    ],
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL CHECK (balance >= 0));\n"
        "CREATE TABLE audit_log (thread text NOT NULL, event text NOT NULL);\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100);"
    ),
    "sessions": {"thread_a": {}, "thread_b": {}},
    "steps": [
        {"name": "b_report_start", "session": "thread_b",
         "sql": "thread B, thread A's connection: INSERT INTO audit_log VALUES ('thread_b', 'report started')",
         "narration": "Thread B writes an audit line on the shared connection; psycopg2 opens the "
                      "connection's transaction (BEGIN)."},
        {"name": "a_withdraw", "session": "thread_a",
         "sql": "UPDATE accounts SET balance = balance - 500 WHERE id = 1",
         "narration": "Thread A withdraws more than the balance: the new row breaks CHECK (balance >= 0). "
                      "The error aborts the connection's transaction, B's work included."},
        {"name": "b_report_end", "session": "thread_b",
         "sql": "thread B, thread A's connection: INSERT INTO audit_log VALUES ('thread_b', 'report finished')",
         "narration": "Thread B's next statement is fine, yet it fails with 25P02: the transaction it "
                      "runs in was aborted by thread A."},
        {"name": "b_rollback", "session": "thread_b", "sql": "thread B, thread A's connection: conn.rollback()",
         "narration": "The only way forward is rollback(): it ends the aborted transaction and throws away "
                      "B's first audit line as well."},
        {"name": "a_withdraw_again", "session": "thread_a",
         "sql": "UPDATE accounts SET balance = balance - 50 WHERE id = 1 RETURNING balance",
         "narration": "A new transaction: the connection works again for every thread."},
        {"name": "a_commit", "session": "thread_a", "sql": "COMMIT"},
    ],
    "invariants": {
        "b_report_logged": "SELECT count(*) = 2 FROM audit_log WHERE thread = 'thread_b'",
        "balance_is_50": "SELECT balance = 50 FROM accounts WHERE id = 1",
    },
    "anomaly": {
        "name": "thread B's work lost to thread A's error",
        "observed_if": [{"invariant": "b_report_logged", "holds": False}],
    },
    "expect": {
        "all": {
            "errors": {"a_withdraw": "23514", "b_report_end": "25P02"},
            "rows": {
                "b_report_start": [[{"rows inserted": 1, "shared connection": "in transaction"}]],
                "b_rollback": [[{"shared connection": "idle"}]],
                "a_withdraw_again": [[50]],
            },
            "invariants": {"b_report_logged": False, "balance_is_50": True},
            "anomaly": True,
            "note": "the same at every level: one connection, one transaction, so A's 23514 aborts it for "
                    "B as well and B's next statement fails with 25P02",
        },
    },
}

# The timeline's [status] under a step is that of the session's own connection, so
# thread B's steps report the shared connection's status (tc.transaction_status) in their result.
status = tc.transaction_status


def play(run) -> None:  # type: ignore[no-untyped-def]
    shared = run.connection("thread_a")
    on_shared = tc.declared_caller(run, SCENARIO, on=shared)

    def audit(event):  # type: ignore[no-untyped-def]
        def insert(conn):  # type: ignore[no-untyped-def]
            with conn.cursor() as cur:
                cur.execute("INSERT INTO audit_log VALUES ('thread_b', %s)", [event])
                return {"rows inserted": cur.rowcount, "shared connection": status(conn)}
        return insert

    def rollback(conn):  # type: ignore[no-untyped-def]
        conn.rollback()
        return {"shared connection": status(conn)}

    on_shared("b_report_start", audit("report started"))
    run.step("a_withdraw")
    on_shared("b_report_end", audit("report finished"))
    on_shared("b_rollback", rollback)
    run.step("a_withdraw_again")
    run.step("a_commit")
