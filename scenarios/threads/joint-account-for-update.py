"""The blog's joint account, fix 2: read the balance with SELECT ... FOR UPDATE.

A Python scenario, with the same threads as threads-joint-account-lost-update;
update_balance() still reads, computes in Python and writes, but its read locks the
row. `play` handles a failed statement like the blog's transaction() helper: roll
back, log, no retry.
"""

from __future__ import annotations

import _joint_account as ja  # the account, its invariants and update_balance()'s statements

READ_FOR_UPDATE = ja.READ + " FOR UPDATE"  # the one change to update_balance(): a locking read

SCENARIO = {
    "name": "threads-joint-account-for-update",
    "title": "Joint account, fix 2: SELECT ... FOR UPDATE makes Charlie's thread wait before it reads",
    "summary": (
        "The joint account of threads-joint-account-lost-update (opens at 500; Alice's "
        "thread deposits 100 then withdraws 50, Charlie's thread withdraws 80). "
        "update_balance() keeps its shape, read, compute in Python, write, but the read is "
        "SELECT balance ... FOR UPDATE, which takes the row lock before reading. Alice "
        "reads 500 and holds the lock; Charlie's read now waits, before it has read "
        "anything. At READ COMMITTED, when Alice commits, Charlie's locking read returns "
        "the newly committed 600, so he writes 520 and Alice's withdrawal leaves 470: "
        "every operation counts. At REPEATABLE READ and SERIALIZABLE the locking read "
        "cannot return a row that changed after Charlie's snapshot: it fails with 40001, "
        "and the blog's code rolls back without retrying, so Charlie's withdrawal is "
        "dropped (with a retry it would count: threads-joint-account-retry). The lock "
        "closes the gap between read and write at every level; the level decides whether "
        "the waiting thread gets fresh data or an error to retry."
    ),
    "tags": ["threads", "blog", "lost-update", "fix", "locks", "python"],
    "references": [
        "https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE",
        "https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-ROWS",
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-REPEATABLE-READ",
        "https://bbengfort.github.io/2017/12/psycopg2-transactions/",
    ],
    "setup": ja.SETUP,
    "sessions": ja.SESSIONS,
    "steps": [
        ja.read("alice", "deposit", sql=READ_FOR_UPDATE,
                narration="Alice's update_balance(+100) reads the balance and locks the row."),
        ja.read("charlie", "withdraw", sql=READ_FOR_UPDATE,
                narration="Charlie's update_balance(-80) wants the same lock: it waits before reading anything."),
        ja.write("alice", "deposit", +100),
        ja.log("alice", "deposit", 100),
        ja.commit("alice", "deposit",
                  narration="Alice commits and releases the lock; Charlie's read goes on, and what it returns "
                            "depends on the level."),
        ja.write("charlie", "withdraw", -80),
        ja.log("charlie", "withdraw", -80),
        ja.commit("charlie", "withdraw"),
        ja.rollback("charlie"),
        *ja.update_balance("alice", "withdraw", -50, read_sql=READ_FOR_UPDATE),
    ],
    "invariants": ja.INVARIANTS,
    "anomaly": ja.LOST_UPDATE,
    "expect": {
        "ru, rc": {
            "blocked": ["charlie_withdraw_read"],
            "rows": {
                "alice_deposit_read": [[500]],
                "charlie_withdraw_read": [[600]],
                "charlie_withdraw_write": [[520]],
                "alice_withdraw_read": [[520]],
                "alice_withdraw_write": [[470]],
            },
            "invariants": {"balance_matches_ledger": True, "every_operation_counted": True},
            "anomaly": False,
            "note": "Charlie's locking read waits for Alice, then returns the 600 she committed: every operation "
                    "counts (READ UNCOMMITTED runs as READ COMMITTED)",
        },
        "rr, ser": {
            "blocked": ["charlie_withdraw_read"],
            "errors": {"charlie_withdraw_read": "40001"},
            "rows": {
                "alice_deposit_read": [[500]],
                "alice_withdraw_read": [[600]],
                "alice_withdraw_write": [[550]],
            },
            "invariants": {"balance_matches_ledger": True, "every_operation_counted": False},
            "anomaly": False,
            "note": "the row changed after Charlie's snapshot, so his waiting FOR UPDATE fails with 40001; without "
                    "a retry his withdrawal is dropped, though nothing is lost from the books",
        },
    },
}


def play(run) -> None:  # type: ignore[no-untyped-def]
    ja.run_steps(run, ("alice_deposit_read", "charlie_withdraw_read", "alice_deposit_write", "alice_deposit_log",
                       "alice_deposit_commit"))
    if ja.failed(run, "charlie_withdraw_read"):
        run.step("charlie_rollback")  # the blog's transaction(): rollback, log, move on
    else:
        ja.run_steps(run, ("charlie_withdraw_write", "charlie_withdraw_log", "charlie_withdraw_commit"))
    ja.run_steps(run, ("alice_withdraw_read", "alice_withdraw_write", "alice_withdraw_log", "alice_withdraw_commit"))
