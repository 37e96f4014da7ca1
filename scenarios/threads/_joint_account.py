"""The joint account of the 2017 psycopg2 blog, shared by the threads-joint-account-* scenarios.

Alice and Charlie share account 1, which opens at 500; every operation adds a line to
the ledger. Each person is a thread with a connection of its own (a session named
"alice" or "charlie"). The blog's update_balance() reads the balance, computes the new
one in Python, writes it back, records the operation in the ledger and commits.

This module holds only the mechanics the four lessons have in common: the tables, the
sessions, the ledger invariants, the statements update_balance() sends (as step
builders) and a small check `play` uses to decide what happens after a failure. Each
scenario file keeps its own story: summary, which steps run in which order, narration
and expectations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Step = dict[str, str]

OPENING_BALANCE = 500

SETUP = (
    "CREATE TABLE accounts (id int PRIMARY KEY, owners text NOT NULL, balance int NOT NULL CHECK (balance >= 0));\n"
    "CREATE TABLE ledger (who text NOT NULL, operation text NOT NULL, amount int NOT NULL);\n"
    f"INSERT INTO accounts VALUES (1, 'alice and charlie', {OPENING_BALANCE});"
)

# Alice's thread and Charlie's thread, each on a connection of its own (psycopg2 style).
SESSIONS: dict[str, dict[str, Any]] = {"alice": {}, "charlie": {}}

READ = "SELECT balance FROM accounts WHERE id = 1"

INVARIANTS = {
    # Nothing is lost from the books: the balance is the opening balance plus what the ledger lists.
    "balance_matches_ledger": (
        f"SELECT balance = {OPENING_BALANCE} + (SELECT coalesce(sum(amount), 0) FROM ledger) FROM accounts WHERE id = 1"
    ),
    # All three operations happened: Alice +100 and -50, Charlie -80.
    "every_operation_counted": f"SELECT balance = {OPENING_BALANCE} + 100 - 80 - 50 FROM accounts WHERE id = 1",
}

LOST_UPDATE = {
    "name": "lost update",
    "observed_if": [{"invariant": "balance_matches_ledger", "holds": False}],
}

BLOG_ROLLBACK_NARRATION = "The blog's transaction() helper catches the error, rolls back and logs it; no retry."


def step(person: str, name: str, sql: str, narration: str | None = None) -> Step:
    """One statement of `person`'s thread (the session of the same name)."""
    declared = {"name": name, "session": person, "sql": sql}
    if narration is not None:
        declared["narration"] = narration
    return declared


def read(person: str, operation: str, *, sql: str = READ, narration: str | None = None) -> Step:
    """update_balance()'s read, step `<person>_<operation>_read`."""
    return step(person, f"{person}_{operation}_read", sql, narration)


def write(person: str, operation: str, amount: int, *, narration: str | None = None) -> Step:
    """update_balance()'s write, step `<person>_<operation>_write`: the balance its own read
    returned plus `amount`, computed in Python (`${<person>_<operation>_read.balance}`)."""
    sign = "+" if amount >= 0 else "-"
    sql = (f"UPDATE accounts SET balance = ${{{person}_{operation}_read.balance}} {sign} {abs(amount)} "
           "WHERE id = 1 RETURNING balance")
    return step(person, f"{person}_{operation}_write", sql, narration)


def log(person: str, operation: str, amount: int, *, ledger_operation: str | None = None,
        narration: str | None = None) -> Step:
    """The ledger line, step `<person>_<operation>_log`; the line's operation is
    `ledger_operation` if given (a retried withdrawal still logs 'withdraw')."""
    sql = f"INSERT INTO ledger VALUES ('{person}', '{ledger_operation or operation}', {amount})"
    return step(person, f"{person}_{operation}_log", sql, narration)


def commit(person: str, operation: str, *, narration: str | None = None) -> Step:
    """The commit that ends the operation, step `<person>_<operation>_commit`."""
    return step(person, f"{person}_{operation}_commit", "COMMIT", narration)


def rollback(person: str, narration: str = BLOG_ROLLBACK_NARRATION) -> Step:
    """What the thread does after a failed statement, step `<person>_rollback`."""
    return step(person, f"{person}_rollback", "ROLLBACK", narration)


def update_balance(person: str, operation: str, amount: int, *, read_sql: str = READ,
                   ledger_operation: str | None = None, narration: str | None = None) -> list[Step]:
    """The whole read-then-write update_balance() of one thread, with nobody in between:
    read, write, ledger line, commit. `narration` goes on the read."""
    return [
        read(person, operation, sql=read_sql, narration=narration),
        write(person, operation, amount),
        log(person, operation, amount, ledger_operation=ledger_operation),
        commit(person, operation),
    ]


def run_steps(run: Any, names: Iterable[str]) -> None:
    """Run declared steps in this order."""
    for name in names:
        run.step(name)


def failed(run: Any, name: str, sqlstate: str | None = None) -> bool:
    """Whether step `name` ran and failed (with this SQLSTATE, if one is given)."""
    result = run.result(name)
    if result is None or result.error is None:
        return False
    return sqlstate is None or result.error.sqlstate == sqlstate
