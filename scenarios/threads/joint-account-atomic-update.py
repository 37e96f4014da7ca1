"""The blog's joint account, fix 1: one atomic UPDATE instead of read-then-write.

A Python scenario, with the same threads and interleaving as
threads-joint-account-lost-update; only update_balance() changed. `play` handles a
failed statement like the blog's transaction() helper: roll back, log, no retry.
"""

from __future__ import annotations

import _joint_account as ja  # the account, its invariants and the blog's ledger and commit steps

SCENARIO = {
    "name": "threads-joint-account-atomic-update",
    "title": "Joint account, fix 1: UPDATE ... SET balance = balance + amount keeps Alice's deposit",
    "summary": (
        "The joint account of threads-joint-account-lost-update (opens at 500; Alice's "
        "thread deposits 100 then withdraws 50, Charlie's thread withdraws 80), with "
        "update_balance() rewritten so that no balance travels through Python: one "
        "statement, UPDATE accounts SET balance = balance + %s ... RETURNING balance, "
        "plus the ledger line. Charlie's UPDATE still waits for Alice's row lock. At READ "
        "COMMITTED, when Alice commits, PostgreSQL re-reads the row she committed (600) "
        "and applies -80 to it: 520, then Alice's withdrawal leaves 470, and every "
        "operation counts. At REPEATABLE READ and SERIALIZABLE the waiting UPDATE is "
        "refused with 40001 because the row changed after Charlie's snapshot; the blog's "
        "code rolls back without retrying, so the books balance but Charlie's withdrawal "
        "is dropped. The atomic UPDATE is the complete fix at READ COMMITTED; at the "
        "stricter levels it must be paired with a retry (threads-joint-account-retry)."
    ),
    "tags": ["threads", "blog", "lost-update", "fix", "python"],
    "references": [
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED",
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-REPEATABLE-READ",
        "https://www.postgresql.org/docs/current/sql-update.html",
        "https://bbengfort.github.io/2017/12/psycopg2-transactions/",
    ],
    "setup": ja.SETUP,
    "sessions": ja.SESSIONS,
    "steps": [
        ja.step("alice", "alice_deposit", "UPDATE accounts SET balance = balance + 100 WHERE id = 1 RETURNING balance",
                "Alice's deposit in one statement: the database does the arithmetic on the row itself."),
        ja.log("alice", "deposit", 100),
        ja.step("charlie", "charlie_withdraw",
                "UPDATE accounts SET balance = balance - 80 WHERE id = 1 RETURNING balance",
                "Charlie's withdrawal, the same way. It waits for Alice's row lock."),
        ja.commit("alice", "deposit",
                  narration="Alice commits. At READ COMMITTED the waiting UPDATE re-evaluates balance - 80 on the "
                            "row Alice committed; at the stricter levels that row is newer than Charlie's snapshot."),
        ja.log("charlie", "withdraw", -80),
        ja.commit("charlie", "withdraw"),
        ja.rollback("charlie"),
        ja.step("alice", "alice_withdraw", "UPDATE accounts SET balance = balance - 50 WHERE id = 1 RETURNING balance"),
        ja.log("alice", "withdraw", -50),
        ja.commit("alice", "withdraw"),
    ],
    "invariants": ja.INVARIANTS,
    "anomaly": ja.LOST_UPDATE,
    "expect": {
        "ru, rc": {
            "blocked": ["charlie_withdraw"],
            "rows": {"alice_deposit": [[600]], "charlie_withdraw": [[520]], "alice_withdraw": [[470]]},
            "invariants": {"balance_matches_ledger": True, "every_operation_counted": True},
            "anomaly": False,
            "note": "the waiting UPDATE re-reads the row Alice committed and subtracts 80 from 600: every "
                    "operation counts (READ UNCOMMITTED runs as READ COMMITTED)",
        },
        "rr, ser": {
            "blocked": ["charlie_withdraw"],
            "errors": {"charlie_withdraw": "40001"},
            "rows": {"alice_deposit": [[600]], "alice_withdraw": [[550]]},
            "invariants": {"balance_matches_ledger": True, "every_operation_counted": False},
            "anomaly": False,
            "note": "the row changed after Charlie's snapshot, so his UPDATE fails with 40001; without a retry "
                    "his withdrawal is dropped, though nothing is lost from the books",
        },
    },
}


def play(run) -> None:  # type: ignore[no-untyped-def]
    ja.run_steps(run, ("alice_deposit", "alice_deposit_log", "charlie_withdraw", "alice_deposit_commit"))
    if ja.failed(run, "charlie_withdraw"):
        run.step("charlie_rollback")  # the blog's transaction(): rollback, log, move on
    else:
        ja.run_steps(run, ("charlie_withdraw_log", "charlie_withdraw_commit"))
    ja.run_steps(run, ("alice_withdraw", "alice_withdraw_log", "alice_withdraw_commit"))
