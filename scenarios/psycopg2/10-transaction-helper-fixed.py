"""The corrected transaction helpers: connect outside the try, roll back and re-raise.

The companion of psycopg2-blog-transaction-helpers. Two repaired helpers, each
opening its own connection as the blog's do:

- a decorator that keeps the blog's shape but connects before `try`, returns the
  function's result, and re-raises after rolling back;
- a context manager that connects before `try`, applies session settings before
  the first statement, and lets psycopg2's `with conn:` commit or roll back (it
  re-raises), then closes the connection in `finally`.

Each step is the application calling a helper. Where the helper lets an exception
through, the step fails with it, as the caller would; a teller (an autocommit
session) reads what was committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import wraps
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from _psycopg2_app import ATM_SETUP, TELLER_SQL, AtmCode, qualified_name, unreachable, what_the_caller_sees

SCENARIO = {
    "name": "psycopg2-transaction-helper-fixed",
    "title": "Transaction helpers that re-raise: the caller learns that the withdrawal failed, and why",
    "summary": (
        "The fix for psycopg2-blog-transaction-helpers. Two rules. First, a helper that rolls "
        "back on error must let the exception go on (re-raise it, or use psycopg2's "
        "`with conn:`, which rolls back and re-raises), so the caller can tell a refused "
        "withdrawal from a successful one and decline instead of dispensing cash; return the "
        "function's result too. Second, open the connection before entering `try`, so that "
        "the except and finally clauses only run when there is a connection to roll back or "
        "close, and a connection failure reaches the caller as itself (OperationalError) and "
        "not as UnboundLocalError. Session settings such as the isolation level go on the "
        "connection before its first statement, never in a wrapper that runs while the "
        "transaction is open. Here the over-large withdrawal fails with CheckViolation "
        "(23514) in the caller's hands; the ATM code catches it and declines; a SERIALIZABLE "
        "deposit and a valid withdrawal commit and return the new balance; and an unreachable "
        "database raises OperationalError directly. The helpers open their own connections "
        "at the server's default level (or the level they are given), so every run level "
        "gives the same result."
    ),
    "tags": ["psycopg2", "driver", "blog", "error-handling", "fix", "python"],
    "references": [
        "https://www.psycopg.org/docs/usage.html#with",
        "https://www.psycopg.org/docs/usage.html#transactions-control",
        "https://www.psycopg.org/docs/connection.html#connection.set_session",
        "https://www.psycopg.org/docs/errors.html",
        "https://www.postgresql.org/docs/current/sql-set-transaction.html",
        "https://docs.python.org/3/library/contextlib.html#contextlib.contextmanager",
        "https://bbengfort.github.io/2017/12/psycopg2-transactions/",
    ],
    "setup": ATM_SETUP,  # account 1 (alice) holds 100; CHECK (balance >= 0); a ledger
    "sessions": {"atm": {}, "teller": {"autocommit": True}},
    "steps": [
        {"name": "atm_withdraw_too_much", "session": "atm", "sql": "withdraw(1, 130)  # @transact, fixed",
         "narration": "The decorator rolls back and re-raises: the caller gets "
                      "psycopg2.errors.CheckViolation (23514), shown here as the step's error."},
        {"name": "teller_after_refusal", "session": "teller", "sql": TELLER_SQL},
        {"name": "atm_declines", "session": "atm",
         "sql": "try: with transaction() as conn: withdraw(conn, 1, 130)\nexcept CheckViolation: decline()",
         "narration": "The ATM code around the fixed context manager can now tell: it catches "
                      "CheckViolation and declines instead of dispensing cash."},
        {"name": "atm_deposit_serializable", "session": "atm",
         "sql": "with transaction(isolation_level='SERIALIZABLE') as conn: deposit(conn, 1, 50)",
         "narration": "The isolation level is set on the new connection before its first statement, "
                      "so psycopg2 starts the transaction with it; `with conn:` commits."},
        {"name": "atm_withdraw_ok", "session": "atm", "sql": "withdraw(1, 60)  # @transact, fixed",
         "narration": "A withdrawal that fits commits, and the decorator passes on the function's "
                      "result: the new balance."},
        {"name": "teller_final", "session": "teller", "sql": TELLER_SQL},
        {"name": "atm_context_manager_connect_fails", "session": "atm",
         "sql": "with transaction() as conn: ...  # connect() fails",
         "narration": "connect() runs before the try: its OperationalError reaches the caller as it is."},
        {"name": "atm_decorator_connect_fails", "session": "atm",
         "sql": "withdraw(1, 10)  # @transact, connect() fails"},
    ],
    "invariants": {
        "balance_matches_ledger": (
            "SELECT balance = 100 + (SELECT coalesce(sum(CASE type WHEN 'credit' THEN amount ELSE -amount END), 0)"
            " FROM ledger) FROM accounts WHERE id = 1"
        ),
    },
    "expect": {
        "all": {
            "errors": {"atm_withdraw_too_much": "23514"},
            "rows": {
                "teller_after_refusal": [[100, 0]],
                "atm_declines": [[{
                    "ATM shows": "declined: insufficient funds",
                    "exception caught by the caller": "psycopg2.errors.CheckViolation",
                    "pgcode": "23514",
                }]],
                "atm_deposit_serializable": [[{"committed; balance now": Decimal("150")}]],
                "atm_withdraw_ok": [[{"withdraw() returned": Decimal("90")}]],
                "teller_final": [[90, 2]],
                "atm_context_manager_connect_fails": [[{
                    "exception seen by the caller": "psycopg2.OperationalError",
                    "exception chain (newest first)": ["psycopg2.OperationalError"],
                    "the real error": 'database "txnlab_no_such_database" does not exist',
                }]],
                "atm_decorator_connect_fails": [[{
                    "exception seen by the caller": "psycopg2.OperationalError",
                    "exception chain (newest first)": ["psycopg2.OperationalError"],
                    "the real error": 'database "txnlab_no_such_database" does not exist',
                }]],
            },
            "invariants": {"balance_matches_ledger": True},
            "note": "the same at every level: the helpers use their own connections, and the fix is "
                    "in how exceptions travel, not in isolation",
        },
    },
}


class FixedCode(AtmCode):
    """Corrected helpers plus the ATM functions of psycopg2-blog-transaction-helpers."""

    # The blog's decorator, repaired: connect first, return the result, re-raise.
    def transact(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            conn = self.connect()  # outside the try: nothing to roll back or close if this fails
            try:
                result = func(conn, *args, **kwargs)
                conn.commit()
                return result
            except Exception as e:
                conn.rollback()
                self.log.error("{} error: {}".format(func.__name__, e))
                raise  # the caller decides what a failure means
            finally:
                conn.close()

        return inner

    # A context manager built on psycopg2's own `with conn:`.
    @contextmanager
    def transaction(self, **session_options: Any) -> Iterator[psycopg2.extensions.connection]:
        conn = self.connect()
        try:
            if session_options:
                conn.set_session(**session_options)  # before the first statement: allowed
            with conn:  # commit on success; on an exception, roll back and re-raise
                yield conn
        finally:
            conn.close()  # `with conn:` does not close the connection

    # The ATM's functions return the new balance; balance(), update_balance() and ledger() come from AtmCode.
    def withdraw(self, conn: psycopg2.extensions.connection, account: int, amount: Any) -> Decimal:
        self.ledger(conn, account, "debit", amount)
        self.update_balance(conn, account, -Decimal(amount))
        return self.balance(conn, account)

    def deposit(self, conn: psycopg2.extensions.connection, account: int, amount: Any) -> Decimal:
        self.ledger(conn, account, "credit", amount)
        self.update_balance(conn, account, amount)
        return self.balance(conn, account)


Caller = Callable[[psycopg2.extensions.connection], Any]


def withdraw_with_decorator(dsn: str, amount: int) -> Caller:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = FixedCode(dsn)
        withdraw = code.transact(code.withdraw)
        return {"withdraw() returned": withdraw(1, amount)}  # an exception goes on to the step

    return caller


def atm_declines(dsn: str) -> Caller:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = FixedCode(dsn)
        try:
            with code.transaction() as conn:
                code.withdraw(conn, 1, 130)
            return {"ATM shows": "dispensed 130"}
        except psycopg2.errors.CheckViolation as exc:
            return {
                "ATM shows": "declined: insufficient funds",
                "exception caught by the caller": qualified_name(exc),
                "pgcode": exc.pgcode,
            }

    return caller


def deposit_serializable(dsn: str) -> Caller:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = FixedCode(dsn)
        with code.transaction(isolation_level="SERIALIZABLE") as conn:
            new_balance = code.deposit(conn, 1, 50)
        return {"committed; balance now": new_balance}

    return caller


def context_manager_connect_fails(dsn: str) -> Caller:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = FixedCode(unreachable(dsn))
        try:
            with code.transaction() as conn:
                code.withdraw(conn, 1, 10)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            return what_the_caller_sees(exc)
        return {"exception seen by the caller": None}

    return caller


def decorator_connect_fails(dsn: str) -> Caller:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = FixedCode(unreachable(dsn))
        try:
            code.transact(code.withdraw)(1, 10)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            return what_the_caller_sees(exc)
        return {"exception seen by the caller": None}

    return caller


def play(run) -> None:  # type: ignore[no-untyped-def]
    sql = {s["name"]: s["sql"] for s in SCENARIO["steps"]}  # type: ignore[index]
    run.call("atm", "atm_withdraw_too_much", sql["atm_withdraw_too_much"], withdraw_with_decorator(run.dsn, 130))
    run.step("teller_after_refusal")
    run.call("atm", "atm_declines", sql["atm_declines"], atm_declines(run.dsn))
    run.call("atm", "atm_deposit_serializable", sql["atm_deposit_serializable"], deposit_serializable(run.dsn))
    run.call("atm", "atm_withdraw_ok", sql["atm_withdraw_ok"], withdraw_with_decorator(run.dsn, 60))
    run.step("teller_final")
    run.call("atm", "atm_context_manager_connect_fails", sql["atm_context_manager_connect_fails"],
             context_manager_connect_fails(run.dsn))
    run.call("atm", "atm_decorator_connect_fails", sql["atm_decorator_connect_fails"],
             decorator_connect_fails(run.dsn))
