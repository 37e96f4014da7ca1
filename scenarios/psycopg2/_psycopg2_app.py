"""Application-side mechanics shared by the psycopg2-* scenarios.

- psycopg2's connection state in words (`transaction_status_name`) and an exception's
  full class name (`qualified_name`), as the steps report them;
- what a caller can see of an exception that a helper let through
  (`what_the_caller_sees`);
- the ATM of the 2017 blog "Transaction Handling with Psycopg2" used by
  psycopg2-blog-transaction-helpers and psycopg2-transaction-helper-fixed: its tables
  (`ATM_SETUP`), the teller's query, a stand-in for its logger and its building blocks
  (`AtmCode`: balance, update_balance, ledger). The transaction helpers and the
  withdraw()/deposit() functions, which is where the two lessons differ, stay in the
  scenario files.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.extensions

TRANSACTION_STATUS_NAMES = {
    psycopg2.extensions.TRANSACTION_STATUS_IDLE: "TRANSACTION_STATUS_IDLE",
    psycopg2.extensions.TRANSACTION_STATUS_ACTIVE: "TRANSACTION_STATUS_ACTIVE",
    psycopg2.extensions.TRANSACTION_STATUS_INTRANS: "TRANSACTION_STATUS_INTRANS",
    psycopg2.extensions.TRANSACTION_STATUS_INERROR: "TRANSACTION_STATUS_INERROR",
    psycopg2.extensions.TRANSACTION_STATUS_UNKNOWN: "TRANSACTION_STATUS_UNKNOWN",
}


def transaction_status_name(conn: psycopg2.extensions.connection) -> str:
    """conn.get_transaction_status() by its constant's name, e.g. TRANSACTION_STATUS_INTRANS."""
    status = conn.get_transaction_status()
    return TRANSACTION_STATUS_NAMES.get(status, str(status))


def qualified_name(exc: BaseException) -> str:
    """The exception's class as the caller would import it, e.g. psycopg2.errors.CheckViolation."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception and the ones it was raised from or during, newest first."""
    chain = []
    current: BaseException | None = exc
    while current is not None:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def real_error(exc: BaseException) -> str:
    """The root of the chain, without the connection target (which differs between machines)."""
    text = str(exception_chain(exc)[-1]).strip()
    return text.split("FATAL:", 1)[-1].strip() if "FATAL:" in text else text


def what_the_caller_sees(exc: BaseException, *, with_message: bool = False) -> dict[str, object]:
    """What reached the caller (and its message, if asked), the chain behind it, and the real error."""
    seen: dict[str, object] = {"exception seen by the caller": qualified_name(exc)}
    if with_message:
        seen["message"] = str(exc)
    seen["exception chain (newest first)"] = [qualified_name(e) for e in exception_chain(exc)]
    seen["the real error"] = real_error(exc)
    return seen


def unreachable(dsn: str) -> str:
    """The run's DSN pointed at a database that does not exist: connect() fails."""
    return psycopg2.extensions.make_dsn(dsn, dbname="txnlab_no_such_database")


# --- the blog's ATM ------------------------------------------------------------------------

ATM_SETUP = (
    "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL,\n"
    "                       balance numeric NOT NULL CONSTRAINT positive_balance CHECK (balance >= 0));\n"
    "CREATE TABLE ledger (account_id int NOT NULL REFERENCES accounts, type text NOT NULL, amount numeric NOT NULL);\n"
    "INSERT INTO accounts VALUES (1, 'alice', 100);"
)

# What the teller (an autocommit session) reads: what was committed.
TELLER_SQL = "SELECT (SELECT balance FROM accounts WHERE id = 1) AS balance, (SELECT count(*) FROM ledger) AS ledger_rows"


class Log:
    """Stands in for the blog's logging.getLogger('balance'): remembers the first line of each error."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def error(self, message: str) -> None:
        self.lines.append(message.strip().splitlines()[0])

    def info(self, message: str) -> None:
        pass


class AtmCode:
    """The ATM's building blocks, as in the blog (authentication left out), bound to one
    database and one log. Subclasses add the transaction helpers and withdraw()/deposit()."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.log = Log()

    # connect(): the blog reads $DATABASE_URL; here, the run's database
    def connect(self) -> psycopg2.extensions.connection:
        return psycopg2.connect(self.dsn)

    @staticmethod
    def balance(conn: psycopg2.extensions.connection, account: int) -> Decimal:
        with conn.cursor() as curs:
            curs.execute("SELECT balance FROM accounts WHERE id = %s", (account,))
            return curs.fetchone()[0]

    def update_balance(self, conn: psycopg2.extensions.connection, account: int, amount: Any) -> None:
        """Read, add in Python, write back: the blog's read-then-write."""
        amount = Decimal(amount)
        with conn.cursor() as curs:
            current = self.balance(conn, account)
            curs.execute("UPDATE accounts SET balance = %s WHERE id = %s", (current + amount, account))

    @staticmethod
    def ledger(conn: psycopg2.extensions.connection, account: int, record: str, amount: Any) -> None:
        with conn.cursor() as curs:
            curs.execute("INSERT INTO ledger (account_id, type, amount) VALUES (%s, %s, %s)",
                         (account, record, amount))
