"""set_session() only between transactions; a read-only session refuses writes (25006).

A Python scenario, because set_session() is a method of the connection object, not
SQL: the steps that call it catch psycopg2's exception and return what the
application sees. The read-only part uses a session declared `read_only: true`,
which is psycopg2's set_session(readonly=True).
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg2
import psycopg2.extensions

from _psycopg2_app import qualified_name, transaction_status_name

SCENARIO = {
    "name": "psycopg2-set-session-read-only",
    "title": "set_session() raises ProgrammingError inside a transaction; a READ ONLY session refuses writes with 25006",
    "summary": (
        "psycopg2's set_session() (isolation_level, readonly, deferrable, autocommit) changes "
        "how the next transactions start; psycopg2 sends those settings with its BEGIN. So it "
        "must be called with no transaction open, and after a plain SELECT one is open (see "
        "psycopg2-implicit-begin): set_session(readonly=True) then raises "
        "psycopg2.ProgrammingError \"set_session cannot be used inside a transaction\", a "
        "driver error with no SQLSTATE, and the open transaction is left as it was. Assigning "
        "conn.autocommit = True at that moment raises the same error, with the same message. "
        "After commit() the call works, and psycopg2's next BEGIN says READ ONLY; a write in "
        "such a transaction fails with SQLSTATE 25006 (psycopg2.errors.ReadOnlySqlTransaction). "
        "Two remarks on the 2017 blog. Its session() helper restores the defaults with "
        "set_session(None, None, None, None), but None means \"leave unchanged\": the "
        "connection stays read-only; the string 'DEFAULT' is what resets a setting. And it "
        "says read-only mode forbids writes to temporary tables; PostgreSQL says the "
        "opposite: a READ ONLY transaction may write to temporary tables, and only to those. "
        "The report session below checks that claim. Nothing here depends on the isolation "
        "level."
    ),
    "tags": ["psycopg2", "driver", "set-session", "read-only", "blog", "python"],
    "references": [
        "https://www.psycopg.org/docs/connection.html#connection.set_session",
        "https://www.psycopg.org/docs/connection.html#connection.autocommit",
        "https://www.psycopg.org/docs/connection.html#connection.readonly",
        "https://www.psycopg.org/docs/usage.html#transactions-control",
        "https://www.postgresql.org/docs/current/sql-set-transaction.html",
        "https://www.postgresql.org/docs/current/errcodes-appendix.html",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 250);"
    ),
    "sessions": {
        "app": {},
        "report": {
            "read_only": True,
            "setup": "CREATE TEMPORARY TABLE report_lines (line text NOT NULL)",
        },
    },
    "steps": [
        {"name": "app_select", "session": "app", "sql": "SELECT balance FROM accounts WHERE id = 1",
         "narration": "A plain SELECT: psycopg2 has opened a transaction."},
        {"name": "app_set_session_in_transaction", "session": "app", "sql": "conn.set_session(readonly=True)",
         "narration": "Too late: a transaction is open. psycopg2 raises ProgrammingError before "
                      "sending anything, and the open transaction is untouched."},
        {"name": "app_autocommit_in_transaction", "session": "app", "sql": "conn.autocommit = True",
         "narration": "The autocommit property goes through the same code and fails the same way, "
                      "with a message that names set_session."},
        {"name": "app_commit", "session": "app", "sql": "COMMIT"},
        {"name": "app_set_session_between", "session": "app", "sql": "conn.set_session(readonly=True)",
         "narration": "Between transactions the call works. It sends nothing yet: psycopg2 remembers "
                      "the setting for its next BEGIN."},
        {"name": "app_write", "session": "app", "sql": "UPDATE accounts SET balance = balance + 50 WHERE id = 1",
         "narration": "psycopg2 now sends BEGIN ... READ ONLY, and the UPDATE fails with 25006."},
        {"name": "app_rollback", "session": "app", "sql": "ROLLBACK"},
        {"name": "app_blog_reset", "session": "app", "sql": "conn.set_session(None, None, None, None)",
         "narration": "The blog's way to \"reset the session to defaults\". None means unchanged, so "
                      "the connection is still read-only; set_session(readonly='DEFAULT') resets it."},
        {"name": "report_read", "session": "report", "sql": "SELECT sum(balance) AS total FROM accounts",
         "narration": "A session set up with set_session(readonly=True): its BEGIN says READ ONLY, "
                      "and reading is fine."},
        {"name": "report_write", "session": "report",
         "sql": "INSERT INTO accounts VALUES (3, 'carol', 0)",
         "narration": "A write to an ordinary table fails with 25006."},
        {"name": "report_rollback", "session": "report", "sql": "ROLLBACK"},
        {"name": "report_temp_write", "session": "report",
         "sql": "INSERT INTO report_lines VALUES ('total: 350')",
         "narration": "A write to the session's temporary table, in a new READ ONLY transaction: allowed."},
        {"name": "report_commit", "session": "report", "sql": "COMMIT"},
    ],
    "claim": {
        "says": "a read-only session (set_session(readonly=True)) does not allow writes to temporary tables",
        "source": '"Transaction Handling with Psycopg2" (2017)',
        "level": "rc",
        "true_if": [{"step": "report_temp_write", "error": "25006"}],
        "holds": False,
    },
    "expect": {
        "all": {
            "errors": {"app_write": "25006", "report_write": "25006"},
            "rows": {
                "app_select": [[100]],
                "app_set_session_in_transaction": [[{
                    "raised": "psycopg2.ProgrammingError",
                    "pgcode": None,
                    "message": "set_session cannot be used inside a transaction",
                    "transaction status afterwards": "TRANSACTION_STATUS_INTRANS",
                }]],
                "app_autocommit_in_transaction": [[{
                    "raised": "psycopg2.ProgrammingError",
                    "pgcode": None,
                    "message": "set_session cannot be used inside a transaction",
                    "transaction status afterwards": "TRANSACTION_STATUS_INTRANS",
                }]],
                "app_set_session_between": [[{"conn.readonly": True}]],
                "app_blog_reset": [[{
                    "conn.readonly after set_session(None, None, None, None)": True,
                    "conn.readonly after set_session(readonly='DEFAULT')": None,
                }]],
                "report_read": [[350]],
            },
            "note": "the same at every level: set_session() is refused while a transaction is open "
                    "whatever its level, and READ ONLY refuses writes to ordinary tables but not "
                    "to temporary ones",
        },
    },
}

def refused(action: Callable[[psycopg2.extensions.connection], None]):  # type: ignore[no-untyped-def]
    """Try `action` on the connection; report the exception and the transaction afterwards."""

    def attempt(conn: psycopg2.extensions.connection) -> dict[str, object]:
        try:
            action(conn)
        except psycopg2.Error as exc:
            outcome: dict[str, object] = {
                "raised": qualified_name(exc),
                "pgcode": exc.pgcode,
                "message": str(exc).strip(),
            }
        else:
            outcome = {"raised": None}
        outcome["transaction status afterwards"] = transaction_status_name(conn)
        return outcome

    return attempt


def make_read_only(conn: psycopg2.extensions.connection) -> None:
    conn.set_session(readonly=True)


def switch_to_autocommit(conn: psycopg2.extensions.connection) -> None:
    conn.autocommit = True


def set_read_only_between_transactions(conn: psycopg2.extensions.connection) -> dict[str, object]:
    conn.set_session(readonly=True)
    return {"conn.readonly": conn.readonly}


def blog_reset(conn: psycopg2.extensions.connection) -> dict[str, object]:
    """The blog's session() helper ends with set_session(None, None, None, None)."""
    conn.set_session(None, None, None, None)
    after_none = conn.readonly
    conn.set_session(readonly="DEFAULT")
    return {
        "conn.readonly after set_session(None, None, None, None)": after_none,
        "conn.readonly after set_session(readonly='DEFAULT')": conn.readonly,
    }


def play(run) -> None:  # type: ignore[no-untyped-def]
    run.step("app_select")
    run.call("app", "app_set_session_in_transaction", "conn.set_session(readonly=True)",
             refused(make_read_only))
    run.call("app", "app_autocommit_in_transaction", "conn.autocommit = True", refused(switch_to_autocommit))
    run.step("app_commit")
    run.call("app", "app_set_session_between", "conn.set_session(readonly=True)",
             set_read_only_between_transactions)
    run.step("app_write")
    run.step("app_rollback")
    run.call("app", "app_blog_reset", "conn.set_session(None, None, None, None)", blog_reset)
    for step in ("report_read", "report_write", "report_rollback", "report_temp_write", "report_commit"):
        run.step(step)
