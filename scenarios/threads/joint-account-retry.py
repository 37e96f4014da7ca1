"""The blog's joint account, fix 3: REPEATABLE READ (or SERIALIZABLE) plus a retry on 40001.

A Python scenario, because the fix is control flow: Charlie's thread runs the blog's
read-then-write update_balance() inside `while True: try ... except
SerializationFailure: rollback`. The first attempt is the interleaving of
threads-joint-account-lost-update; `play` decides, like the retry loop, whether the
second attempt happens.
"""

from __future__ import annotations

import _joint_account as ja  # the account, its invariants and update_balance()'s statements

SERIALIZATION_FAILURE = "40001"

SCENARIO = {
    "name": "threads-joint-account-retry",
    "title": "Joint account, fix 3: REPEATABLE READ refuses Charlie's stale write, and his thread retries",
    "summary": (
        "The joint account of threads-joint-account-lost-update (opens at 500; Alice's "
        "thread deposits 100 then withdraws 50, Charlie's thread withdraws 80), with the "
        "blog's read-then-write update_balance() unchanged but wrapped in a retry loop: "
        "when a statement fails with SQLSTATE 40001 (psycopg2.errors.SerializationFailure) "
        "the thread rolls back and runs the whole function again. At REPEATABLE READ and "
        "SERIALIZABLE Charlie's write, computed from his read of 500, is refused once "
        "Alice commits; the retry starts a new transaction, reads 600, writes 520, and "
        "Alice's withdrawal then leaves 470: every operation counts. At READ COMMITTED "
        "nothing fails, so the loop never retries and Alice's deposit is lost exactly as "
        "in the unfixed version (READ UNCOMMITTED is the same). The retry loop is only a "
        "fix together with a level that detects the conflict; the retried function must "
        "be safe to run twice, which it is here because the failed attempt was rolled "
        "back completely."
    ),
    "tags": ["threads", "blog", "lost-update", "fix", "python"],
    "references": [
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-REPEATABLE-READ",
        "https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html",
        "https://www.psycopg.org/docs/errors.html",
        "https://bbengfort.github.io/2017/12/psycopg2-transactions/",
    ],
    "setup": ja.SETUP,
    "sessions": ja.SESSIONS,
    "steps": [
        ja.read("alice", "deposit"),
        ja.read("charlie", "withdraw"),
        ja.write("alice", "deposit", +100),
        ja.log("alice", "deposit", 100),
        ja.write("charlie", "withdraw", -80,
                 narration="Charlie writes a balance computed from his read of 500 and waits for Alice's row lock."),
        ja.commit("alice", "deposit",
                  narration="Alice commits. At REPEATABLE READ and SERIALIZABLE Charlie's stale write is refused."),
        ja.log("charlie", "withdraw", -80),
        ja.commit("charlie", "withdraw"),
        ja.rollback("charlie",
                    narration="The retry loop caught SerializationFailure: roll back, then run update_balance() again."),
        *ja.update_balance("charlie", "retry", -80, ledger_operation="withdraw",
                           narration="A new transaction with a new snapshot: the retry sees Alice's deposit."),
        *ja.update_balance("alice", "withdraw", -50),
    ],
    "invariants": ja.INVARIANTS,
    "anomaly": ja.LOST_UPDATE,
    "expect": {
        "ru, rc": {
            "blocked": ["charlie_withdraw_write"],
            "rows": {
                "charlie_withdraw_read": [[500]],
                "charlie_withdraw_write": [[420]],
                "alice_withdraw_read": [[420]],
                "alice_withdraw_write": [[370]],
            },
            "invariants": {"balance_matches_ledger": False, "every_operation_counted": False},
            "anomaly": True,
            "note": "nothing fails at READ COMMITTED, so the retry loop never runs and Alice's deposit is lost",
        },
        "rr, ser": {
            "blocked": ["charlie_withdraw_write"],
            "errors": {"charlie_withdraw_write": "40001"},
            "rows": {
                "charlie_withdraw_read": [[500]],
                "charlie_retry_read": [[600]],
                "charlie_retry_write": [[520]],
                "alice_withdraw_read": [[520]],
                "alice_withdraw_write": [[470]],
            },
            "invariants": {"balance_matches_ledger": True, "every_operation_counted": True},
            "anomaly": False,
            "note": "the stale write fails with 40001; the retry reads 600 and writes 520, and every operation counts",
        },
    },
}

FIRST_ATTEMPT = ("alice_deposit_read", "charlie_withdraw_read", "alice_deposit_write", "alice_deposit_log",
                 "charlie_withdraw_write", "alice_deposit_commit")
RETRY = ("charlie_rollback", "charlie_retry_read", "charlie_retry_write", "charlie_retry_log",
         "charlie_retry_commit")
ALICE_WITHDRAW = ("alice_withdraw_read", "alice_withdraw_write", "alice_withdraw_log", "alice_withdraw_commit")


def play(run) -> None:  # type: ignore[no-untyped-def]
    ja.run_steps(run, FIRST_ATTEMPT)
    if ja.failed(run, "charlie_withdraw_write", SERIALIZATION_FAILURE):  # except SerializationFailure:
        ja.run_steps(run, RETRY)
    else:
        ja.run_steps(run, ("charlie_withdraw_log", "charlie_withdraw_commit"))
    ja.run_steps(run, ALICE_WITHDRAW)
