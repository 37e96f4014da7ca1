"""`with Session.begin() as session:` (sessionmaker.begin()): commit on success, rollback on exception.

The psycopg2 lesson "use `with conn:` so that an exception rolls back" in its SQLAlchemy 2
form. The failing transfer is written as one real `with` block, in a generator that
`play` advances step by step, so the timeline can show the state between the UPDATE the
block already sent and the exception that makes the block roll back.
"""

from _dialect import DRIVERS, Dialect, asyncpg_sent, by_driver


class InsufficientFunds(Exception):
    """The application's own exception: SQLAlchemy rolls back for any exception, not only database errors."""


BALANCES = "SELECT owner, balance FROM accounts ORDER BY owner"

GET = "SELECT accounts.owner, accounts.balance FROM accounts WHERE accounts.owner = {}"
SET = "UPDATE accounts SET balance={} WHERE accounts.owner = {}"
# What each step puts on the wire through psycopg2, which interpolates the values into the SQL.
SENT = {
    "app_transfer_30": ["BEGIN", GET.format("'alice'"), GET.format("'bob'"), SET.format(70, "'alice'"),
                        SET.format(80, "'bob'"), "COMMIT"],
    "app_credit_bob": ["BEGIN", GET.format("'bob'"), SET.format(180, "'bob'")],
    "app_debit_alice": [GET.format("'alice'"), "ROLLBACK"],
}
# psycopg 3 and asyncpg bind them ($1, typed by SQLAlchemy). psycopg 3 prepares a statement
# once it has run more than 5 times on a connection (prepare_threshold) and, after a
# ROLLBACK, forgets what it prepared and sends DEALLOCATE ALL (psycopg/_preparing.py, _should_discard).
GET_BOUND, SET_BOUND = GET.format("$1::VARCHAR"), SET.format("$1::INTEGER", "$2::VARCHAR")
SENT_BOUND = {
    "app_transfer_30": ["BEGIN", GET_BOUND, GET_BOUND, SET_BOUND, SET_BOUND, "COMMIT"],
    "app_credit_bob": ["BEGIN", GET_BOUND, SET_BOUND],
    "app_debit_alice": [GET_BOUND, "ROLLBACK"],
}
SENT_PSYCOPG = {**SENT_BOUND, "app_debit_alice": [GET_BOUND, "ROLLBACK", "DEALLOCATE ALL"]}

SCENARIO = {
    "name": "sqlalchemy-session-begin",
    "title": "SQLAlchemy 2: with Session.begin() commits on success and rolls back on any exception",
    "summary": (
        "sessionmaker.begin() opens a Session and its transaction for one `with` block: the block "
        "flushes and commits when it ends normally, and rolls back and re-raises when an exception "
        "leaves it; either way the Session is closed and its connection goes back to the pool. Alice "
        "sends Bob 30: BEGIN, two SELECTs, two UPDATEs and COMMIT go out when the block ends. Then "
        "she tries to send 100 that she does not have. The block credits Bob first and flushes, so "
        "that UPDATE is already on the server, holding its row lock but invisible to others; then "
        "the application's own check raises InsufficientFunds, not a database error. The block "
        "sends ROLLBACK, the credit is undone, and the caller catches the exception. No money is "
        "created or lost."
    ),
    "tags": ["sqlalchemy", "driver", "python"],
    "references": [
        "https://docs.sqlalchemy.org/en/20/orm/session_transaction.html#managing-transactions",
        "https://docs.sqlalchemy.org/en/20/orm/session_transaction.html#begin-once",
        "https://docs.sqlalchemy.org/en/20/orm/session_basics.html#framing-out-a-begin-commit-rollback-block",
    ],
    "drivers": DRIVERS,
    "capture": True,
    "setup": (
        "CREATE TABLE accounts (owner text PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0));\n"
        "INSERT INTO accounts VALUES ('alice', 100), ('bob', 50);"
    ),
    "sessions": {"app": {}, "observer": {"autocommit": True}},
    "steps": [
        {"name": "app_first_connect", "session": "app", "sql": "with engine.connect(): pass",
         "narration": "The engine's first connection, made here so that the dialect's one-time queries "
                      "(each batch rolled back) do not clutter the steps that follow."},
        {"name": "app_transfer_30", "session": "app",
         "sql": ("with Session.begin() as session: alice = session.get(Account, 'alice'); "
                 "bob = session.get(Account, 'bob'); alice.balance -= 30; bob.balance += 30"),
         "narration": "The block ends normally: the UPDATEs are flushed and COMMIT goes out, then the "
                      "Session is closed and its connection returned to the pool."},
        {"name": "observer_balances_1", "session": "observer", "sql": BALANCES},
        {"name": "app_credit_bob", "session": "app",
         "sql": ("with Session.begin() as session: bob = session.get(Account, 'bob'); "
                 "bob.balance += 100; session.flush(); ...  (the block goes on in the next step)"),
         "narration": "A second transfer, of 100. Inside the block the credit to Bob is flushed: the "
                      "server has the UPDATE, in a transaction that is still open."},
        {"name": "observer_balances_2", "session": "observer", "sql": BALANCES,
         "narration": "The credit is not committed, so the observer still sees Bob at 80."},
        {"name": "app_debit_alice", "session": "app",
         "sql": ("...  alice = session.get(Account, 'alice'); if alice.balance < 100: raise "
                 "InsufficientFunds(...)  (leaves the block; the caller catches it: return repr(exc))"),
         "narration": "Alice has only 70: the application raises its own exception inside the block. "
                      "The block rolls back (ROLLBACK goes out) and re-raises; the caller catches it. "
                      "psycopg 3 then sends DEALLOCATE ALL: after a ROLLBACK it drops the statements it "
                      "prepared (it prepares one that ran more than 5 times on a connection)."},
        {"name": "observer_balances_3", "session": "observer", "sql": BALANCES,
         "narration": "Bob's credit was undone with the rest of the block."},
    ],
    "invariants": {
        "no_money_created_or_lost": "SELECT sum(balance) = 150 FROM accounts",
        "only_the_first_transfer_happened": (
            "SELECT array_agg(balance ORDER BY owner) = '{70,80}' FROM accounts"
        ),
    },
    "expect": {
        "all": by_driver({
            "sent": SENT,
            "rows": {
                "app_transfer_30": [["committed"]],
                "observer_balances_1": [["alice", 70], ["bob", 80]],
                "app_credit_bob": [["bob credited 100, flushed, not committed"]],
                "observer_balances_2": [["alice", 70], ["bob", 80]],
                "app_debit_alice": [["InsufficientFunds('alice has 70')"]],
                "observer_balances_3": [["alice", 70], ["bob", 80]],
            },
            "invariants": {"no_money_created_or_lost": True, "only_the_first_transfer_happened": True},
            "note": (
                "the engine sets no isolation_level, so the Session's transactions run at the server "
                "default (READ COMMITTED) whatever the run's level, and nothing here depends on the "
                "level: one writer, and an observer that autocommits"
            ),
        }, psycopg={"sent": SENT_PSYCOPG}, asyncpg={"sent": asyncpg_sent(SENT_BOUND)}),
    },
}

def orm_models():  # type: ignore[no-untyped-def]
    """The mapped class, built when the scenario runs: loading the catalogue need not import SQLAlchemy."""
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    class Base(DeclarativeBase):
        pass

    class Account(Base):
        __tablename__ = "accounts"

        owner: Mapped[str] = mapped_column(primary_key=True)
        balance: Mapped[int]

    return Account


def play(run) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.orm import sessionmaker

    Account = orm_models()
    dialect = Dialect(run)
    engine = dialect.engine
    Session = sessionmaker(engine)
    call = dialect.call

    def first_connect():  # type: ignore[no-untyped-def]
        with engine.connect():
            pass

    def transfer_30():  # type: ignore[no-untyped-def]
        with Session.begin() as session:
            alice = session.get(Account, "alice")
            bob = session.get(Account, "bob")
            alice.balance -= 30
            bob.balance += 30
        return "committed"

    def transfer_100():  # type: ignore[no-untyped-def]
        """The application's transfer, paused (yield) where the timeline looks at the server."""
        with Session.begin() as session:
            bob = session.get(Account, "bob")
            bob.balance += 100
            session.flush()
            yield "bob credited 100, flushed, not committed"
            alice = session.get(Account, "alice")
            if alice.balance < 100:
                raise InsufficientFunds(f"alice has {alice.balance}")
            alice.balance -= 100

    block = transfer_100()

    def debit_alice():  # type: ignore[no-untyped-def]
        try:
            next(block)
        except InsufficientFunds as exc:
            return repr(exc)
        return "the block went on without raising"

    try:
        call("app_first_connect", first_connect)
        call("app_transfer_30", transfer_30)
        run.step("observer_balances_1")
        call("app_credit_bob", lambda: next(block))
        run.step("observer_balances_2")
        call("app_debit_alice", debit_alice)
        run.step("observer_balances_3")
    finally:
        run.finish()
        dialect.close(block.close)  # only if the run stopped inside the block: leaves it, which rolls back
