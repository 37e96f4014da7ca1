"""Two threads, one psycopg 3 connection: one transaction, and one stack of transaction() blocks.

A Python scenario, because the lesson is about threads: thread_b's steps run on thread_b's
own thread with thread_a's connection (`run.step(..., on=...)`), as an application does when
all its worker threads share one connection. Each step's "sent" is what went out on that
shared connection during the step.

Thread A's `with conn.transaction():` block spans several steps, as a block does while its
thread waits for something: the step that enters it calls the block's `__enter__()`, the
step that leaves it `__exit__()`, exactly what the `with` statement calls.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from _psycopg_app import LEVELS, begin, refused, status

LEDGER = "INSERT INTO ledger VALUES (%s, %s)"
LEDGER_SQL = "INSERT INTO ledger VALUES ($1, $2)"
AUDIT = "INSERT INTO audit_log VALUES (%s, %s)"
AUDIT_SQL = "INSERT INTO audit_log VALUES ($1, $2)"
SEEN_BY_C = "SELECT (SELECT coalesce(sum(amount), 0) FROM ledger) AS ledger_sum, (SELECT count(*) FROM audit_log) AS audit_lines"

SCENARIO = {
    "name": "psycopg-shared-connection-threads",
    "title": "psycopg 3, two threads on one connection: B's commit() commits A's work, and B's transaction() inside A's block is only a savepoint",
    "summary": (
        "psycopg 3 connections may be shared between threads: a lock in the connection lets one "
        "thread at a time talk to the server. But a connection is one session with one "
        "transaction. Thread A writes a debit; thread B, on the same connection, sees it "
        "uncommitted and calls conn.commit() for its own work: the COMMIT it sends commits A's "
        "debit too, as with psycopg2 (threads-shared-connection). psycopg 3 adds a second "
        "twist: the connection keeps one stack of transaction() blocks for all threads. While "
        "thread A is inside `with conn.transaction():`, thread B's conn.commit() raises "
        "psycopg.ProgrammingError (sending nothing), and B's own `with conn.transaction():` "
        "block becomes a SAVEPOINT inside A's transaction: B's block ends without error, and "
        "nothing of it is committed until A's block ends, which commits B's audit line with "
        "A's work (had A's block failed, B's line would have gone with it). Give each thread its "
        "own connection, or one from a pool (psycopg-pool-return). All of this happens inside "
        "one transaction, so every level behaves the same; only the BEGINs name the level."
    ),
    "tags": ["psycopg", "driver", "threads", "python"],
    "references": [
        "https://www.psycopg.org/psycopg3/docs/advanced/async.html#concurrent-operations",
        "https://www.psycopg.org/psycopg3/docs/basic/transactions.html#transaction-contexts",
        "https://www.psycopg.org/psycopg3/docs/api/connections.html#psycopg.Connection.commit",
        "https://peps.python.org/pep-0249/#threadsafety",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE ledger (account text NOT NULL, amount int NOT NULL);\n"
        "CREATE TABLE audit_log (thread text NOT NULL, event text NOT NULL);"
    ),
    "sessions": {
        "thread_a": {"driver": "psycopg"},
        "thread_b": {"driver": "psycopg"},
        "thread_c": {"autocommit": True},
    },
    "steps": [
        {"name": "a_debit", "session": "thread_a",
         "sql": "thread A: conn.execute(\"INSERT INTO ledger VALUES (%s, %s)\", ['checking', -100])",
         "narration": "psycopg 3 opens a transaction on the connection both threads use."},
        {"name": "b_reads", "session": "thread_b",
         "sql": "thread B, A's connection: conn.execute(\"SELECT account, amount FROM ledger\")",
         "narration": "Another thread, the same transaction: B sees A's uncommitted debit. No error."},
        {"name": "b_commit", "session": "thread_b", "sql": "thread B, A's connection: conn.commit()",
         "narration": "B commits what it believes is its own work; COMMIT ends the session's transaction, "
                      "A's debit included."},
        {"name": "c_after_b_commit", "session": "thread_c", "sql": SEEN_BY_C,
         "narration": "Thread C, on a connection of its own, sees the debit committed."},
        {"name": "a_enter_block", "session": "thread_a",
         "sql": "thread A: with conn.transaction():  # entered\n"
                "    conn.execute(\"INSERT INTO ledger VALUES (%s, %s)\", ['checking', -50])",
         "narration": "A starts a second transfer, in a transaction() block this time: BEGIN, the debit. "
                      "A's block is still open."},
        {"name": "b_commit_in_block", "session": "thread_b", "sql": "thread B, A's connection: conn.commit()",
         "narration": "psycopg 3 refuses: a transaction() block is open on the connection (A's). Nothing is sent."},
        {"name": "b_block", "session": "thread_b",
         "sql": "thread B, A's connection: with conn.transaction():\n"
                "    conn.execute(\"INSERT INTO audit_log VALUES (%s, %s)\", ['thread_b', 'report sent'])",
         "narration": "B's block is nested in A's: SAVEPOINT, the INSERT, RELEASE. It ends without error, "
                      "and commits nothing."},
        {"name": "c_during_a_block", "session": "thread_c", "sql": SEEN_BY_C,
         "narration": "Neither A's second debit nor B's audit line is committed."},
        {"name": "a_exit_block", "session": "thread_a",
         "sql": "thread A:     conn.execute(\"INSERT INTO ledger VALUES (%s, %s)\", ['savings', 150])\n"
                "thread A: # the block ends",
         "narration": "A's credit, and the end of A's block: COMMIT, of A's transfer and of B's audit line."},
        {"name": "c_at_end", "session": "thread_c", "sql": SEEN_BY_C},
    ],
    "expect": {},  # per level, below: only the level named in the BEGINs differs
    "invariants": {"audit_line_committed_by_a": "SELECT count(*) = 1 FROM audit_log"},
}


def expectation(level: str) -> dict[str, object]:
    """The same at every level but for the BEGINs, which name it."""
    return {
        "rows": {
            "a_debit": [[{"conn.info.transaction_status": "INTRANS"}]],
            "b_reads": [[{"same thread as thread_a": False, "rows": [["checking", -100]]}]],
            "b_commit": [[{"conn.info.transaction_status": "IDLE"}]],
            "c_after_b_commit": [[-100, 0]],
            "a_enter_block": [[{"conn.info.transaction_status": "INTRANS"}]],
            "b_commit_in_block": [[{
                "raised": "psycopg.ProgrammingError", "sqlstate": None,
                "message": "Explicit commit() forbidden within a Transaction context. (Transaction will "
                           "be automatically committed on successful exit from context.)",
                "conn.info.transaction_status": "INTRANS",
            }]],
            "b_block": [[{"B's block was a savepoint": "_pg3_2", "conn.info.transaction_status": "INTRANS"}]],
            "c_during_a_block": [[-100, 0]],
            "a_exit_block": [[{"conn.info.transaction_status": "IDLE"}]],
            "c_at_end": [[0, 1]],
        },
        "sent": {
            "a_debit": [begin(level), LEDGER_SQL],
            "b_reads": ["SELECT account, amount FROM ledger"],
            "b_commit": ["COMMIT"],
            "a_enter_block": [begin(level), LEDGER_SQL],
            "b_commit_in_block": [],
            "b_block": ['SAVEPOINT "_pg3_2"', AUDIT_SQL, 'RELEASE "_pg3_2"'],
            "a_exit_block": [LEDGER_SQL, "COMMIT"],
        },
        "state": {"b_commit": "idle", "b_commit_in_block": "idle in transaction", "b_block": "idle in transaction",
                  "a_exit_block": "idle"},
        "invariants": {"audit_line_committed_by_a": True},
        "note": f"the same at every level but for the BEGINs, which name {LEVELS[level]}: both threads "
                "work inside one transaction",
    }


SCENARIO["expect"] = {level: expectation(level) for level in LEVELS}


def play(run) -> None:  # type: ignore[no-untyped-def]
    shared = run.connection("thread_a")  # the application's one connection
    seen: dict[str, Any] = {}

    def a_debit(conn: psycopg.Connection[Any]) -> dict[str, object]:
        seen["thread a"] = threading.get_ident()
        conn.execute(LEDGER, ["checking", -100])
        return {"conn.info.transaction_status": status(conn)}

    def b_reads(conn: psycopg.Connection[Any]) -> dict[str, object]:
        rows = [list(row) for row in conn.execute("SELECT account, amount FROM ledger")]
        return {"same thread as thread_a": threading.get_ident() == seen["thread a"], "rows": rows}

    def b_commit(conn: psycopg.Connection[Any]) -> dict[str, object]:
        conn.commit()
        return {"conn.info.transaction_status": status(conn)}

    def a_enter_block(conn: psycopg.Connection[Any]) -> dict[str, object]:
        seen["block"] = conn.transaction()
        seen["block"].__enter__()
        conn.execute(LEDGER, ["checking", -50])
        return {"conn.info.transaction_status": status(conn)}

    def b_block(conn: psycopg.Connection[Any]) -> dict[str, object]:
        with conn.transaction() as tx:
            conn.execute(AUDIT, ["thread_b", "report sent"])
        return {"B's block was a savepoint": tx.savepoint_name, "conn.info.transaction_status": status(conn)}

    def a_exit_block(conn: psycopg.Connection[Any]) -> dict[str, object]:
        conn.execute(LEDGER, ["savings", 150])
        seen["block"].__exit__(None, None, None)
        return {"conn.info.transaction_status": status(conn)}

    run.step("a_debit", a_debit)
    run.step("b_reads", b_reads, on=shared)
    run.step("b_commit", b_commit, on=shared)
    run.step("c_after_b_commit")
    run.step("a_enter_block", a_enter_block)
    run.step("b_commit_in_block", refused(lambda conn: conn.commit()), on=shared)
    run.step("b_block", b_block, on=shared)
    run.step("c_during_a_block")
    run.step("a_exit_block", a_exit_block)
    run.step("c_at_end")
