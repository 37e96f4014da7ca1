"""idle_in_transaction_session_timeout ends a forgotten psycopg2 transaction, and the connection with it.

A Python scenario, because the lesson is what psycopg2 does next: the application's
following statement meets a connection the server has already closed. The step that
runs it catches the exception and returns, as the step's result, what an application
could observe: the exception's class, SQLSTATE and message, and the connection's
attributes afterwards (closed, status, get_transaction_status(), and what rollback()
does then). The engine opens a fresh connection for this session at the next run.

The wait for the server is a bounded poll of pg_stat_activity from another session,
done by a function in the run's schema so that it is one statement (and the timeline
is the same every time); it gives up after 3 seconds.
"""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

from _psycopg2_app import qualified_name, transaction_status_name

STATUS_NAMES = {
    psycopg2.extensions.STATUS_READY: "STATUS_READY",
    psycopg2.extensions.STATUS_BEGIN: "STATUS_BEGIN",
    psycopg2.extensions.STATUS_PREPARED: "STATUS_PREPARED",
}

SELECT_BALANCE = "SELECT balance FROM accounts WHERE id = 1"

SCENARIO = {
    "name": "psycopg2-idle-in-transaction-timeout",
    "title": "idle_in_transaction_session_timeout ends the session; psycopg2's next statement gets a closed connection",
    "summary": (
        "The cure the server offers for psycopg2-implicit-begin: with "
        "idle_in_transaction_session_timeout set (200 ms here; usually seconds or minutes, in "
        "postgresql.conf, per role or per session), a session that sits idle inside a "
        "transaction for longer is ended by the server. It rolls the transaction back, releases "
        "its locks, sends the client a FATAL error (SQLSTATE 25P03, \"terminating connection due "
        "to idle-in-transaction timeout\") and closes the connection. The application learns "
        "about it only on its next statement. With psycopg2 2.9 (2.9.13 and libpq 17 here) that "
        "statement raises a plain psycopg2.OperationalError, \"server closed the connection "
        "unexpectedly\", with no SQLSTATE (pgcode is None): the server's reason never reaches "
        "the exception, so an except clause for psycopg2.errors.IdleInTransactionSessionTimeout "
        "(25P03) would not fire. Afterwards conn.closed is 2 (broken), get_transaction_status() "
        "says UNKNOWN, conn.status still claims a transaction is open (the psycopg2 "
        "documentation says status is undefined for a closed connection), and conn.rollback() "
        "raises InterfaceError \"connection already closed\". The application must open a new "
        "connection (a pool should discard this one) and redo the whole transaction. The "
        "timeout does not depend on the isolation level, so every level behaves the same."
    ),
    "tags": ["psycopg2", "driver", "idle-in-transaction", "timeout", "python"],
    "references": [
        "https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-IDLE-IN-TRANSACTION-SESSION-TIMEOUT",
        "https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW",
        "https://www.postgresql.org/docs/current/errcodes-appendix.html",
        "https://www.psycopg.org/docs/usage.html#transactions-control",
        "https://www.psycopg.org/docs/connection.html#connection.closed",
        "https://www.psycopg.org/docs/connection.html#connection.status",
        "https://www.psycopg.org/docs/module.html#psycopg2.OperationalError",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100);\n"
        "CREATE TABLE app_backend (pid int NOT NULL);\n"
        # Poll pg_stat_activity until the app's backend is gone, for at most max_wait.
        # pg_stat_activity is a snapshot taken once per transaction, so each round clears it.
        "CREATE FUNCTION wait_for_app_backend_to_end(max_wait interval) RETURNS text\n"
        "LANGUAGE plpgsql AS $$\n"
        "DECLARE\n"
        "  target int := (SELECT pid FROM app_backend);\n"
        "  deadline timestamptz := clock_timestamp() + max_wait;\n"
        "BEGIN\n"
        "  LOOP\n"
        "    PERFORM pg_stat_clear_snapshot();\n"
        "    IF NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = target) THEN\n"
        "      RETURN 'ended by the server';\n"
        "    END IF;\n"
        "    IF clock_timestamp() > deadline THEN\n"
        "      RETURN 'still there after ' || max_wait;\n"
        "    END IF;\n"
        "    PERFORM pg_sleep(0.01);\n"
        "  END LOOP;\n"
        "END $$;"
    ),
    "sessions": {
        "app": {
            "setup": [
                "SET idle_in_transaction_session_timeout = '200ms'",
                "INSERT INTO app_backend VALUES (pg_backend_pid())",
            ],
        },
        "dba": {"autocommit": True},
    },
    "steps": [
        {"name": "app_select", "session": "app", "sql": SELECT_BALANCE,
         "narration": "psycopg2 opens a transaction for the SELECT, and the application then does "
                      "something else for a while without committing: the session is idle in "
                      "transaction, and the 200 ms timeout starts."},
        {"name": "dba_wait_for_timeout", "session": "dba",
         "sql": "SELECT wait_for_app_backend_to_end('3 seconds') AS app_backend",
         "narration": "Another session polls pg_stat_activity (at most 3 s) until the server has "
                      "ended the application's backend: rolled back, locks released, connection "
                      "closed. The application has noticed nothing yet."},
        {"name": "app_next_statement", "session": "app", "sql": SELECT_BALANCE,
         "narration": "The application comes back and runs its next statement on the same "
                      "connection. The step catches the exception and returns what the application "
                      "can see. Nothing reaches the server, and there is no server view any more: "
                      "the backend is gone."},
    ],
    "expect": {
        "all": {
            "rows": {
                "app_select": [[100]],
                "dba_wait_for_timeout": [["ended by the server"]],
                "app_next_statement": [[{
                    "exception": "psycopg2.OperationalError",
                    "pgcode": None,
                    "message": "server closed the connection unexpectedly",
                    "conn.closed": 2,
                    "conn.status": "STATUS_BEGIN",
                    "get_transaction_status()": "TRANSACTION_STATUS_UNKNOWN",
                    "conn.rollback()": "psycopg2.InterfaceError: connection already closed",
                }]],
            },
            "note": "the same at every level: the timeout measures time spent idle inside any "
                    "transaction; the next statement raises OperationalError without a SQLSTATE "
                    "and leaves conn.closed == 2",
        },
    },
}

def next_statement_on_dead_connection(conn: psycopg2.extensions.connection) -> dict[str, object]:
    """Run the next statement as the application would, and report what psycopg2 shows."""
    try:
        with conn.cursor() as cur:
            cur.execute(SELECT_BALANCE)
            cur.fetchall()
    except psycopg2.Error as exc:
        error = exc
    else:
        return {"exception": None}
    evidence: dict[str, object] = {
        "exception": qualified_name(error),
        "pgcode": error.pgcode,
        "message": str(error).strip().splitlines()[0],
        "conn.closed": conn.closed,
        "conn.status": STATUS_NAMES.get(conn.status, str(conn.status)),
        "get_transaction_status()": transaction_status_name(conn),
    }
    try:
        conn.rollback()
        evidence["conn.rollback()"] = "ok"
    except psycopg2.Error as exc:
        evidence["conn.rollback()"] = f"{qualified_name(exc)}: {str(exc).strip()}"
    return evidence


def play(run) -> None:  # type: ignore[no-untyped-def]
    run.step("app_select")
    run.step("dba_wait_for_timeout")
    run.call("app", "app_next_statement", SELECT_BALANCE + "  (on the same connection)",
             next_statement_on_dead_connection)
