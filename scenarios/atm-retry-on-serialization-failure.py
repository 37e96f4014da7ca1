"""Fix 3 for the blog's lost update: REPEATABLE READ (or SERIALIZABLE) plus a retry loop.

A Python scenario, because the fix is control flow: the application catches
SQLSTATE 40001 (psycopg2.errors.SerializationFailure), rolls back and runs
update_balance() again from the start. The steps below are the SQL that the
blog's read-then-write function sends; `play` decides, like the application,
whether the retry happens.
"""

from __future__ import annotations

SERIALIZATION_FAILURE = "40001"

SCENARIO = {
    "name": "atm-retry-on-serialization-failure",
    "title": "Fix 3: REPEATABLE READ refuses the stale write, and the application retries",
    "summary": (
        "The blog's read-then-write update_balance() again, with a retry loop around it: "
        "when a statement fails with SQLSTATE 40001 the application rolls back and runs "
        "the whole function once more. At REPEATABLE READ and SERIALIZABLE, ATM 2's stale "
        "write is refused, the retry reads the committed balance, and both operations "
        "count. At READ COMMITTED nothing fails, so nothing is retried: the retry loop "
        "alone fixes nothing, it must be paired with a level that detects the conflict."
    ),
    "tags": ["blog", "lost-update", "fix", "python"],
    "references": [
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-REPEATABLE-READ",
        "https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html",
        "https://www.psycopg.org/docs/errors.html",
    ],
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, "
        "balance int NOT NULL CHECK (balance >= 0));\n"
        "CREATE TABLE ledger (atm text NOT NULL, amount int NOT NULL);\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100);"
    ),
    "sessions": {"atm1": {}, "atm2": {}},
    "steps": [
        {"name": "atm1_read", "session": "atm1", "sql": "SELECT balance FROM accounts WHERE id = 1"},
        {"name": "atm2_read", "session": "atm2", "sql": "SELECT balance FROM accounts WHERE id = 1"},
        {"name": "atm1_write", "session": "atm1",
         "sql": "UPDATE accounts SET balance = ${atm1_read.balance} + 50 WHERE id = 1"},
        {"name": "atm1_log", "session": "atm1", "sql": "INSERT INTO ledger VALUES ('atm1', 50)"},
        {"name": "atm2_write", "session": "atm2",
         "sql": "UPDATE accounts SET balance = ${atm2_read.balance} - 30 WHERE id = 1",
         "narration": "ATM 2 writes a balance computed from its earlier read and waits for ATM 1's row lock."},
        {"name": "atm1_commit", "session": "atm1", "sql": "COMMIT"},
        {"name": "atm2_log", "session": "atm2", "sql": "INSERT INTO ledger VALUES ('atm2', -30)"},
        {"name": "atm2_commit", "session": "atm2", "sql": "COMMIT"},
        {"name": "atm2_rollback", "session": "atm2", "sql": "ROLLBACK",
         "narration": "The application caught SerializationFailure: it rolls back and starts over."},
        {"name": "atm2_retry_read", "session": "atm2", "sql": "SELECT balance FROM accounts WHERE id = 1",
         "narration": "A new transaction, a new snapshot: the retry sees ATM 1's committed deposit."},
        {"name": "atm2_retry_write", "session": "atm2",
         "sql": "UPDATE accounts SET balance = ${atm2_retry_read.balance} - 30 WHERE id = 1"},
        {"name": "atm2_retry_log", "session": "atm2", "sql": "INSERT INTO ledger VALUES ('atm2', -30)"},
        {"name": "atm2_retry_commit", "session": "atm2", "sql": "COMMIT"},
    ],
    "final": "SELECT balance, 100 + (SELECT coalesce(sum(amount), 0) FROM ledger) AS by_the_ledger FROM accounts WHERE id = 1",
    "invariants": {
        "balance_matches_ledger": (
            "SELECT balance = 100 + (SELECT coalesce(sum(amount), 0) FROM ledger) FROM accounts WHERE id = 1"
        ),
        "both_operations_counted": "SELECT balance = 120 FROM accounts WHERE id = 1",
    },
    "anomaly": {
        "name": "lost update",
        "observed_if": [{"invariant": "balance_matches_ledger", "holds": False}],
    },
    "expect": {
        "ru, rc": {
            "blocked": ["atm2_write"],
            "rows": {"atm2_read": [[100]]},
            "invariants": {"balance_matches_ledger": False, "both_operations_counted": False},
            "anomaly": True,
            "note": "nothing fails at READ COMMITTED, so the retry loop never runs and the deposit is lost",
        },
        "rr, ser": {
            "blocked": ["atm2_write"],
            "errors": {"atm2_write": "40001"},
            "rows": {"atm2_read": [[100]], "atm2_retry_read": [[150]]},
            "invariants": {"balance_matches_ledger": True, "both_operations_counted": True},
            "anomaly": False,
            "note": "the stale write fails with 40001; the retry reads 150 and writes 120",
        },
    },
    "workload": {
        "summary": (
            "Every client is an ATM running the blog's update_balance() itself, through psycopg2: "
            "read the balance and the account's update counter, add a random deposit in Python, "
            "write both back, log the deposit in the ledger, commit. txnlab bench's --retries is "
            "the application's retry loop: a transaction that fails with 40001 is rolled back and "
            "run again from the start. At REPEATABLE READ and SERIALIZABLE lost_updates and "
            "money_vanished stay at zero and the retries show what the fix costs; at READ "
            "COMMITTED nothing fails, nothing is retried, and deposits are lost as in atm-lost-update."
        ),
        "setup": "ALTER TABLE accounts ADD COLUMN updates int NOT NULL DEFAULT 0",
        "function": "update_balance",
        "measures": {
            "lost_updates": "SELECT (SELECT count(*) FROM ledger) - updates FROM accounts WHERE id = 1",
            "money_vanished": (
                "SELECT 100 + (SELECT coalesce(sum(amount), 0) FROM ledger) - balance FROM accounts WHERE id = 1"
            ),
        },
        # The lesson's both_operations_counted is about its two operations only.
        "invariants": {
            "balance_matches_ledger": (
                "SELECT balance = 100 + (SELECT coalesce(sum(amount), 0) FROM ledger) FROM accounts WHERE id = 1"
            ),
        },
    },
}


def update_balance(conn, rng) -> None:  # type: ignore[no-untyped-def]
    """The blog's read-then-write: one random deposit, the balance computed in Python. The
    update counter travels with the balance, so a lost write shows as a ledger row it missed."""
    amount = rng.randint(1, 100)
    with conn.cursor() as cur:
        cur.execute("SELECT balance, updates FROM accounts WHERE id = 1")
        balance, updates = cur.fetchone()
        cur.execute("UPDATE accounts SET balance = %s, updates = %s WHERE id = 1", (balance + amount, updates + 1))
        cur.execute("INSERT INTO ledger VALUES ('atm', %s)", (amount,))
    conn.commit()

FIRST_ATTEMPT = ("atm1_read", "atm2_read", "atm1_write", "atm1_log", "atm2_write", "atm1_commit")
RETRY = ("atm2_rollback", "atm2_retry_read", "atm2_retry_write", "atm2_retry_log", "atm2_retry_commit")


def play(run) -> None:  # type: ignore[no-untyped-def]
    """ATM 2 runs update_balance() inside `while True: try ... except SerializationFailure`."""
    for step in FIRST_ATTEMPT:
        run.step(step)
    write = run.result("atm2_write")
    if write is not None and write.error is not None and write.error.sqlstate == SERIALIZATION_FAILURE:
        for step in RETRY:
            run.step(step)
    else:
        run.step("atm2_log")
        run.step("atm2_commit")
