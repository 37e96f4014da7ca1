"""The 2017 blog's transaction helpers, reproduced, and what they hide from their callers.

"Transaction Handling with Psycopg2" (bbengfort.github.io, December 2017) wraps work in
a `@transaction` decorator and in a `transaction()` context manager (later a pooled
version that also applies session settings), plus a `session()` helper for the
isolation level. The functions below rebuild their structure (where the connection
is opened, what the except and finally clauses do, what is returned) so that their
behaviour can be observed. Like the blog's code they open their own connections (to
the run's database, at the server's default level); the blog's log.error() becomes a
list the step returns, because the caller never sees it.

Each step is the application calling one helper; it returns what the caller can see.
A teller (an autocommit session) reads what was committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import wraps
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.pool

from _psycopg2_app import ATM_SETUP, TELLER_SQL, AtmCode, Log, unreachable, what_the_caller_sees

SCENARIO = {
    "name": "psycopg2-blog-transaction-helpers",
    "title": "The 2017 blog's @transaction and transaction() swallow failures; a failed connect() becomes UnboundLocalError",
    "summary": (
        "The 2017 blog wraps each unit of work in a helper that commits on success and, on "
        "any exception, rolls back and logs the error. Logging is all it does: the exception "
        "stops there. A withdrawal of 130 from an account holding 100 breaks CHECK "
        "(balance >= 0); the decorated withdraw() returns None as if it had worked (it returns "
        "None on success too), and code written after a `with transaction():` block runs on, "
        "here dispensing the cash, while the balance was never changed. The blog's session() "
        "helper makes things worse: it restores the settings with set_session() while the "
        "transaction is still open, which raises ProgrammingError, which transaction() "
        "swallows after rolling the deposit back; every deposit made that way is silently "
        "lost. And when opening the connection fails: the context managers open it inside "
        "their try, so the except clause's conn.rollback() and the finally clause's "
        "conn.close() meet an unbound variable, and the caller gets UnboundLocalError, with "
        "the real OperationalError two links down the exception chain. The same happens to "
        "the pooled version when the pool is exhausted. The decorator, by contrast, connects "
        "before its try, so there the real error reaches the caller. The helpers open their "
        "own connections at the server's default level, so every run level gives the same "
        "result. psycopg2-transaction-helper-fixed shows the corrected pattern."
    ),
    "tags": ["psycopg2", "driver", "blog", "error-handling", "python"],
    "references": [
        "https://bbengfort.github.io/2017/12/psycopg2-transactions/",
        "https://www.psycopg.org/docs/usage.html#transactions-control",
        "https://www.psycopg.org/docs/usage.html#with",
        "https://www.psycopg.org/docs/connection.html#connection.set_session",
        "https://www.psycopg.org/docs/pool.html",
        "https://www.postgresql.org/docs/current/ddl-constraints.html#DDL-CONSTRAINTS-CHECK-CONSTRAINTS",
        "https://docs.python.org/3/library/contextlib.html#contextlib.contextmanager",
        "https://docs.python.org/3/reference/executionmodel.html#resolution-of-names",
    ],
    "setup": ATM_SETUP,  # account 1 (alice) holds 100; CHECK (balance >= 0); a ledger
    "sessions": {"atm": {}, "teller": {"autocommit": True}},
    "steps": [
        {"name": "atm_decorated_withdraw", "session": "atm", "sql": "withdraw(1, 130)  # @transaction",
         "narration": "The decorated withdraw(): ledger line, read balance, write balance - 130. The "
                      "UPDATE fails with 23514; the decorator rolls back, logs, and returns None. "
                      "The caller cannot tell this from a success."},
        {"name": "teller_after_decorator", "session": "teller", "sql": TELLER_SQL},
        {"name": "atm_context_manager_withdraw", "session": "atm",
         "sql": "with transaction() as conn: withdraw(conn, 1, 130)\ndispense_cash(130)",
         "narration": "The same withdrawal inside `with transaction() as conn:`. The context manager "
                      "swallows the CheckViolation, so the line after the block runs: the ATM "
                      "dispenses 130 that were never debited."},
        {"name": "teller_after_context_manager", "session": "teller", "sql": TELLER_SQL},
        {"name": "atm_deposit_with_session_helper", "session": "atm",
         "sql": "with transaction() as conn:\n  with session(conn, isolation_level='SERIALIZABLE') as conn:\n"
                "    deposit(conn, 1, 50)",
         "narration": "The blog's two-step pattern. The deposit's statements all succeed, but on the "
                      "way out session() calls set_session(None, None, None, None) with the "
                      "transaction still open: ProgrammingError. transaction() catches it, rolls the "
                      "deposit back and logs it; the caller sees a normal return."},
        {"name": "teller_after_session_helper", "session": "teller", "sql": TELLER_SQL},
        {"name": "atm_context_manager_connect_fails", "session": "atm",
         "sql": "with transaction() as conn: ...  # connect() fails",
         "narration": "The database cannot be reached (here: a database name that does not exist). "
                      "connect() raises inside the try, `conn` is never bound, and the except and "
                      "finally clauses raise UnboundLocalError in turn."},
        {"name": "atm_decorator_connect_fails", "session": "atm",
         "sql": "withdraw(1, 10)  # @transaction, connect() fails",
         "narration": "The decorator calls connect() before its try, so the real OperationalError "
                      "reaches the caller, unchanged."},
        {"name": "atm_pooled_context_manager_pool_exhausted", "session": "atm",
         "sql": "with transaction('withdraw') as conn: ...  # pool.getconn() fails",
         "narration": "The blog's final, pooled transaction(): another request holds the pool's only "
                      "connection, pool.getconn() raises PoolError inside the try, and again the "
                      "caller gets UnboundLocalError."},
    ],
    "invariants": {
        "balance_untouched": "SELECT balance = 100 FROM accounts WHERE id = 1",
        "no_ledger_lines": "SELECT NOT EXISTS (SELECT 1 FROM ledger)",
    },
    "expect": {
        "all": {
            "rows": {
                "atm_decorated_withdraw": [[{
                    "withdraw() returned": None,
                    "exception seen by the caller": None,
                    "logged": ['withdraw error: new row for relation "accounts" violates check '
                               'constraint "positive_balance"'],
                }]],
                "teller_after_decorator": [[100, 0]],
                "atm_context_manager_withdraw": [[{
                    "code after the with block ran": "dispensed 130",
                    "exception seen by the caller": None,
                    "logged": ['db error: new row for relation "accounts" violates check '
                               'constraint "positive_balance"'],
                }]],
                "teller_after_context_manager": [[100, 0]],
                "atm_deposit_with_session_helper": [[{
                    "code after the with block ran": "deposit of 50 confirmed",
                    "exception seen by the caller": None,
                    "logged": ["db error: set_session cannot be used inside a transaction"],
                }]],
                "teller_after_session_helper": [[100, 0]],
                "atm_context_manager_connect_fails": [[{
                    "exception seen by the caller": "builtins.UnboundLocalError",
                    "message": "cannot access local variable 'conn' where it is not associated with a value",
                    "exception chain (newest first)": [
                        "builtins.UnboundLocalError",
                        "builtins.UnboundLocalError",
                        "psycopg2.OperationalError",
                    ],
                    "the real error": 'database "txnlab_no_such_database" does not exist',
                    "logged": [],
                }]],
                "atm_decorator_connect_fails": [[{
                    "exception seen by the caller": "psycopg2.OperationalError",
                    "exception chain (newest first)": ["psycopg2.OperationalError"],
                    "the real error": 'database "txnlab_no_such_database" does not exist',
                    "logged": [],
                }]],
                "atm_pooled_context_manager_pool_exhausted": [[{
                    "exception seen by the caller": "builtins.UnboundLocalError",
                    "message": "cannot access local variable 'conn' where it is not associated with a value",
                    "exception chain (newest first)": [
                        "builtins.UnboundLocalError",
                        "builtins.UnboundLocalError",
                        "psycopg2.pool.PoolError",
                    ],
                    "the real error": "connection pool exhausted",
                    "logged": [],
                }]],
            },
            "invariants": {"balance_untouched": True, "no_ledger_lines": True},
            "note": "the same at every level: the helpers open their own connections at the server's "
                    "default level, and what they hide is Python control flow, not isolation",
        },
    },
}


# --- the blog's code, rebuilt ----------------------------------------------------------


class BlogCode(AtmCode):
    """The blog's helpers and ATM functions, bound to one database and one log."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.pool: psycopg2.pool.ThreadedConnectionPool | None = None

    # The first helper: a decorator that opens a connection per call.
    def transaction_decorator(self, func: Callable[..., Any]) -> Callable[..., None]:
        log = self.log

        @wraps(func)
        def inner(*args: Any, **kwargs: Any) -> None:
            conn = self.connect()  # before the try, as in the blog
            try:
                func(conn, *args, **kwargs)  # the result is dropped
                conn.commit()
            except Exception as e:  # noqa: BLE001 - the pattern under study
                conn.rollback()
                log.error("{} error: {}".format(func.__name__, e))
            finally:
                conn.close()

        return inner

    # The second helper: a context manager; the connection is opened inside the try.
    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.connection]:
        try:
            conn = self.connect()
            yield conn
            conn.commit()
        except Exception as e:  # noqa: BLE001 - the pattern under study
            conn.rollback()
            self.log.error("db error: {}".format(e))
        finally:
            conn.close()

    # The blog's session() helper, to be nested inside transaction().
    @contextmanager
    def session(self, conn: psycopg2.extensions.connection, isolation_level: Any = None,
                readonly: Any = None, deferrable: Any = None) -> Iterator[psycopg2.extensions.connection]:
        try:
            conn.set_session(isolation_level=isolation_level, readonly=readonly, deferrable=deferrable)
            yield conn
        finally:
            conn.set_session(None, None, None, None)  # meant as "back to the defaults"

    # The final, pooled context manager (session options applied on the pooled connection).
    @contextmanager
    def pooled_transaction(self, name: str = "transaction", **kwargs: Any) -> Iterator[psycopg2.extensions.connection]:
        assert self.pool is not None
        options = {
            "isolation_level": kwargs.get("isolation_level", None),
            "readonly": kwargs.get("readonly", None),
            "deferrable": kwargs.get("deferrable", None),
        }
        try:
            conn = self.pool.getconn()
            conn.set_session(**options)
            yield conn
            conn.commit()
        except Exception as e:  # noqa: BLE001 - the pattern under study
            conn.rollback()
            self.log.error("{} error: {}".format(name, e))
        finally:
            conn.reset()
            self.pool.putconn(conn)

    # The ATM's functions, as in the blog; balance(), update_balance() and ledger() come from AtmCode.
    def withdraw(self, conn: psycopg2.extensions.connection, account: int, amount: Any) -> None:
        self.ledger(conn, account, "debit", amount)
        self.update_balance(conn, account, -Decimal(amount))
        self.log.info("withdraw {} from account {}".format(amount, account))

    def deposit(self, conn: psycopg2.extensions.connection, account: int, amount: Any) -> None:
        self.ledger(conn, account, "credit", amount)
        self.update_balance(conn, account, amount)
        self.log.info("deposit {} to account {}".format(amount, account))


# --- what the caller sees ----------------------------------------------------------------


def _failure(exc: BaseException, log: Log, *, with_message: bool) -> dict[str, object]:
    return {**what_the_caller_sees(exc, with_message=with_message), "logged": log.lines}


def decorated_withdraw(dsn: str) -> Callable[[psycopg2.extensions.connection], dict[str, object]]:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = BlogCode(dsn)
        withdraw = code.transaction_decorator(code.withdraw)
        try:
            returned = withdraw(1, 130)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            return _failure(exc, code.log, with_message=True)
        return {"withdraw() returned": returned, "exception seen by the caller": None, "logged": code.log.lines}

    return caller


def context_manager_withdraw(dsn: str) -> Callable[[psycopg2.extensions.connection], dict[str, object]]:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = BlogCode(dsn)
        try:
            with code.transaction() as conn:
                code.withdraw(conn, 1, 130)
            after = "dispensed 130"  # the ATM's next line: hand out the cash
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            return _failure(exc, code.log, with_message=True)
        return {"code after the with block ran": after, "exception seen by the caller": None,
                "logged": code.log.lines}

    return caller


def deposit_with_session_helper(dsn: str) -> Callable[[psycopg2.extensions.connection], dict[str, object]]:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = BlogCode(dsn)
        try:
            with code.transaction() as conn:
                with code.session(conn, isolation_level="SERIALIZABLE") as conn:
                    code.deposit(conn, 1, 50)
            after = "deposit of 50 confirmed"
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            return _failure(exc, code.log, with_message=True)
        return {"code after the with block ran": after, "exception seen by the caller": None,
                "logged": code.log.lines}

    return caller


def context_manager_connect_fails(dsn: str) -> Callable[[psycopg2.extensions.connection], dict[str, object]]:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = BlogCode(unreachable(dsn))
        try:
            with code.transaction() as conn:
                code.withdraw(conn, 1, 10)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            return _failure(exc, code.log, with_message=True)
        return {"exception seen by the caller": None, "logged": code.log.lines}

    return caller


def decorator_connect_fails(dsn: str) -> Callable[[psycopg2.extensions.connection], dict[str, object]]:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = BlogCode(unreachable(dsn))
        withdraw = code.transaction_decorator(code.withdraw)
        try:
            withdraw(1, 10)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            return _failure(exc, code.log, with_message=False)
        return {"exception seen by the caller": None, "logged": code.log.lines}

    return caller


def pooled_pool_exhausted(dsn: str) -> Callable[[psycopg2.extensions.connection], dict[str, object]]:
    def caller(_session_conn: psycopg2.extensions.connection) -> dict[str, object]:
        code = BlogCode(dsn)
        code.pool = psycopg2.pool.ThreadedConnectionPool(0, 1, dsn)
        try:
            busy = code.pool.getconn()  # another request holds the only connection
            try:
                with code.pooled_transaction("withdraw") as conn:
                    code.withdraw(conn, 1, 10)
            except Exception as exc:  # noqa: BLE001 - reported, not hidden
                return _failure(exc, code.log, with_message=True)
            finally:
                code.pool.putconn(busy)
            return {"exception seen by the caller": None, "logged": code.log.lines}
        finally:
            code.pool.closeall()

    return caller


def play(run) -> None:  # type: ignore[no-untyped-def]
    described = {step["name"]: step["sql"] for step in SCENARIO["steps"]}  # type: ignore[index]

    def call(name: str, function: Callable[[psycopg2.extensions.connection], dict[str, object]]) -> None:
        run.call("atm", name, described[name], function)

    call("atm_decorated_withdraw", decorated_withdraw(run.dsn))
    run.step("teller_after_decorator")
    call("atm_context_manager_withdraw", context_manager_withdraw(run.dsn))
    run.step("teller_after_context_manager")
    call("atm_deposit_with_session_helper", deposit_with_session_helper(run.dsn))
    run.step("teller_after_session_helper")
    call("atm_context_manager_connect_fails", context_manager_connect_fails(run.dsn))
    call("atm_decorator_connect_fails", decorator_connect_fails(run.dsn))
    call("atm_pooled_context_manager_pool_exhausted", pooled_pool_exhausted(run.dsn))
