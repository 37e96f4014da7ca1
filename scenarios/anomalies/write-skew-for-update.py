"""Write skew, fix 1: the check locks the rows it counts (SELECT ... FOR UPDATE).

A Python scenario, because the application's decision is control flow: at
REPEATABLE READ and SERIALIZABLE Bob's locking check fails with 40001, and the
application then rolls back and runs the request again instead of sending its
UPDATE. (A YAML scenario cannot say this: a step whose `${bob_check.count}` comes
from a failed step is recorded as a failure without a SQLSTATE, which `expect`
cannot name.)
"""

from __future__ import annotations

SERIALIZATION_FAILURE = "40001"

CHECK = "SELECT count(*) FROM (SELECT name FROM doctors WHERE on_call FOR UPDATE) AS locked"

SCENARIO = {
    "name": "write-skew-for-update",
    "title": "Write skew fixed by locking what the check reads (SELECT ... FOR UPDATE)",
    "summary": (
        "The doctors on call again (see write-skew-doctors): at least one doctor must stay "
        "on call; Alice and Bob are on call, and each one's app checks that at least two "
        "doctors are on call before taking its own doctor off call. Here the check locks "
        "the rows it counts with SELECT ... FOR UPDATE, so Bob's check waits until Alice's "
        "transaction ends. What happens then depends on the level. At READ COMMITTED the "
        "waiting check re-reads the newest version of each row, skips Alice (now off call), "
        "counts one doctor, and Bob's app leaves him on call. At REPEATABLE READ and "
        "SERIALIZABLE the check cannot return a row that changed after its snapshot: it "
        "fails with 40001, the app rolls back and retries, and the retry counts one doctor. "
        "The lock closes the gap between check and write at every level; the level decides "
        "whether the loser gets a fresh answer or an error to retry."
    ),
    "tags": ["anomaly", "write-skew", "fix", "locks", "python"],
    "references": [
        "https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE",
        "https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-ROWS",
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED",
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-REPEATABLE-READ",
        "https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html",
    ],
    "setup": (
        "CREATE TABLE doctors (name text PRIMARY KEY, on_call boolean NOT NULL);\n"
        "INSERT INTO doctors VALUES ('alice', true), ('bob', true), ('carol', false);"
    ),
    "sessions": {"alice": {}, "bob": {}},
    "steps": [
        {"name": "alice_check", "session": "alice", "sql": CHECK,
         "narration": "Alice's app counts the doctors on call and locks every row it counts. "
                      "(FOR UPDATE is not allowed next to count(*), so the locking SELECT is a subquery.)"},
        {"name": "bob_check", "session": "bob", "sql": CHECK,
         "narration": "Bob's app runs the same check. Alice holds the row locks, so Bob's check waits before it has counted anything."},
        {"name": "alice_off", "session": "alice",
         "sql": "UPDATE doctors SET on_call = false WHERE name = 'alice' AND ${alice_check.count} >= 2",
         "narration": "Two doctors were on call, so Alice goes off call. (The condition on the count is the app's decision, written into the SQL.)"},
        {"name": "alice_commit", "session": "alice", "sql": "COMMIT",
         "narration": "Alice commits and releases the locks; Bob's check goes on, and what it returns depends on the level."},
        {"name": "bob_off", "session": "bob",
         "sql": "UPDATE doctors SET on_call = false WHERE name = 'bob' AND ${bob_check.count} >= 2",
         "narration": "Bob's app takes him off call only if its check counted two doctors."},
        {"name": "bob_commit", "session": "bob", "sql": "COMMIT"},
        {"name": "bob_rollback", "session": "bob", "sql": "ROLLBACK",
         "narration": "The app caught SerializationFailure (40001): it rolls back and runs Bob's request again."},
        {"name": "bob_retry_check", "session": "bob", "sql": CHECK,
         "narration": "A new transaction with a new snapshot: the retry sees that Alice is off call."},
        {"name": "bob_retry_off", "session": "bob",
         "sql": "UPDATE doctors SET on_call = false WHERE name = 'bob' AND ${bob_retry_check.count} >= 2",
         "narration": "Only one doctor is on call, so the app does not take Bob off call."},
        {"name": "bob_retry_commit", "session": "bob", "sql": "COMMIT"},
    ],
    "invariants": {
        "at_least_one_on_call": "SELECT count(*) >= 1 FROM doctors WHERE on_call",
    },
    "anomaly": {
        "name": "write skew",
        "observed_if": [{"invariant": "at_least_one_on_call", "holds": False}],
    },
    "expect": {
        "ru, rc": {
            "blocked": ["bob_check"],
            "rows": {"alice_check": [[2]], "bob_check": [[1]]},
            "invariants": {"at_least_one_on_call": True},
            "anomaly": False,
            "note": "once Alice commits, the waiting FOR UPDATE re-reads the newest row versions, finds "
                    "only Bob on call and counts 1, so Bob stays on call (READ UNCOMMITTED runs as READ COMMITTED)",
        },
        "rr, ser": {
            "blocked": ["bob_check"],
            "errors": {"bob_check": "40001"},
            "rows": {"alice_check": [[2]], "bob_retry_check": [[1]]},
            "invariants": {"at_least_one_on_call": True},
            "anomaly": False,
            "note": "Alice changed a row after Bob's snapshot was taken, so his waiting FOR UPDATE fails "
                    "with 40001; the retry counts 1 and leaves Bob on call",
        },
    },
}

FIRST_ATTEMPT = ("alice_check", "bob_check", "alice_off", "alice_commit")
RETRY = ("bob_rollback", "bob_retry_check", "bob_retry_off", "bob_retry_commit")


def play(run) -> None:  # type: ignore[no-untyped-def]
    """Bob's request runs inside `while True: try ... except SerializationFailure: rollback`."""
    for step in FIRST_ATTEMPT:
        run.step(step)
    check = run.result("bob_check")
    if check is not None and check.error is not None and check.error.sqlstate == SERIALIZATION_FAILURE:
        for step in RETRY:
            run.step(step)
    else:
        run.step("bob_off")
        run.step("bob_commit")
