"""The 2017 blog's joint account: Alice and Charlie, two threads, one balance.

A Python scenario. Each person is a thread with a connection of its own (the blog's
threads each took one from a ThreadedConnectionPool), and each operation runs the
blog's read-then-write update_balance(): read the balance, compute the new one in
Python, write it back, record the operation in the ledger, commit. The steps below
are the statements that function sends. The interleaving is the engine's step order,
so the race happens the same way every time. `play` decides, like the blog's
transaction() helper, what happens when a statement fails: roll back and log the
error, with no retry.
"""

from __future__ import annotations

import _joint_account as ja  # the account, its invariants and update_balance()'s statements

SCENARIO = {
    "name": "threads-joint-account-lost-update",
    "title": "The blog's joint account: Alice's deposit is lost to Charlie's withdrawal at READ COMMITTED",
    "summary": (
        "Alice and Charlie share a bank account that opens at 500. Alice's thread deposits "
        "100 and then withdraws 50; at the same time Charlie's thread withdraws 80. Each "
        "operation is the 2017 blog's update_balance(): read the balance, add the amount "
        "in Python, write the result back, add a line to the ledger, commit. Both threads "
        "read 500. Alice writes 600; Charlie's write of 420 (500 - 80) waits for Alice's "
        "row lock. At READ COMMITTED, once Alice commits, the waiting UPDATE simply goes "
        "ahead and overwrites 600 with 420: Alice's deposit is lost although the ledger "
        "lists it, and her withdrawal then starts from 420 and leaves 370 instead of 470 "
        "(balance = 500 + committed ledger is broken). READ UNCOMMITTED behaves the same "
        "in PostgreSQL. At REPEATABLE READ and SERIALIZABLE Charlie's stale write is "
        "refused with SQLSTATE 40001; the blog's code rolls back and logs the error, so "
        "nothing is lost from the books, but Charlie's withdrawal silently did not happen "
        "(only a retry makes it count: threads-joint-account-retry). Threads change "
        "nothing about isolation: each thread's connection is an ordinary session. The "
        "fixes: threads-joint-account-atomic-update, threads-joint-account-for-update, "
        "threads-joint-account-retry."
    ),
    "tags": ["threads", "blog", "lost-update", "python"],
    "references": [
        "https://bbengfort.github.io/2017/12/psycopg2-transactions/",
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED",
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-REPEATABLE-READ",
        "https://www.psycopg.org/docs/usage.html#thread-and-process-safety",
    ],
    "setup": ja.SETUP,
    "sessions": ja.SESSIONS,
    "steps": [
        ja.read("alice", "deposit", narration="Alice's thread starts update_balance(+100): it reads the balance."),
        ja.read("charlie", "withdraw",
                narration="Charlie's thread starts update_balance(-80) and reads the same balance."),
        ja.write("alice", "deposit", +100,
                 narration="Alice writes the balance computed in Python and holds the row lock."),
        ja.log("alice", "deposit", 100),
        ja.write("charlie", "withdraw", -80,
                 narration="Charlie writes a balance computed from his read of 500, and waits for Alice's row lock."),
        ja.commit("alice", "deposit",
                  narration="Alice commits. What Charlie's waiting UPDATE does now depends on the level."),
        ja.log("charlie", "withdraw", -80),
        ja.commit("charlie", "withdraw"),
        ja.rollback("charlie"),
        *ja.update_balance("alice", "withdraw", -50,
                           narration="Alice's thread goes on with update_balance(-50), in a new transaction."),
    ],
    "invariants": ja.INVARIANTS,
    "anomaly": ja.LOST_UPDATE,
    "expect": {
        "ru, rc": {
            "blocked": ["charlie_withdraw_write"],
            "rows": {
                "alice_deposit_read": [[500]],
                "charlie_withdraw_read": [[500]],
                "alice_deposit_write": [[600]],
                "charlie_withdraw_write": [[420]],
                "alice_withdraw_read": [[420]],
                "alice_withdraw_write": [[370]],
            },
            "invariants": {"balance_matches_ledger": False, "every_operation_counted": False},
            "anomaly": True,
            "note": "Charlie's waiting UPDATE goes ahead when Alice commits and writes 420, computed from a stale "
                    "read: the deposit is lost (READ UNCOMMITTED runs as READ COMMITTED)",
        },
        "rr, ser": {
            "blocked": ["charlie_withdraw_write"],
            "errors": {"charlie_withdraw_write": "40001"},
            "rows": {
                "alice_deposit_read": [[500]],
                "charlie_withdraw_read": [[500]],
                "alice_deposit_write": [[600]],
                "alice_withdraw_read": [[600]],
                "alice_withdraw_write": [[550]],
            },
            "invariants": {"balance_matches_ledger": True, "every_operation_counted": False},
            "anomaly": False,
            "note": "Charlie's stale write fails with 40001 and the blog's code rolls back without retrying: the "
                    "books balance, but Charlie's withdrawal never happened",
        },
    },
}

ALICE_DEPOSIT = ("alice_deposit_read", "charlie_withdraw_read", "alice_deposit_write", "alice_deposit_log",
                 "charlie_withdraw_write", "alice_deposit_commit")
ALICE_WITHDRAW = ("alice_withdraw_read", "alice_withdraw_write", "alice_withdraw_log", "alice_withdraw_commit")


def play(run) -> None:  # type: ignore[no-untyped-def]
    ja.run_steps(run, ALICE_DEPOSIT)
    if ja.failed(run, "charlie_withdraw_write"):
        run.step("charlie_rollback")  # the blog's transaction(): rollback, log, move on
    else:
        ja.run_steps(run, ("charlie_withdraw_log", "charlie_withdraw_commit"))
    ja.run_steps(run, ALICE_WITHDRAW)
