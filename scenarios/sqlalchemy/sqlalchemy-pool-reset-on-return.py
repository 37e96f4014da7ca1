"""The pool's reset on return: a forgotten transaction is rolled back and its row lock released.

An application checks a connection out of SQLAlchemy's pool, updates a row, and gives the
connection back without committing. The pool calls rollback() on it ("reset on return"),
which ends the transaction and releases the row lock a teller's UPDATE was waiting for.

Then the same mistake through a Core Connection: Connection.close() rolls back the open
transaction itself, and the pool, told that the transaction was already reset, skips its
own rollback (SQLAlchemy's documentation: the pool's rollback happens "except in the case
when the Connection can guarantee that a rollback() has been called immediately before the
connection is returned to the pool"). The pool's `reset` event reports which of the two
happened; each returning step gives what it reported.

The pool's connection is registered with run.watch() so that the teller's wait for it is
detected. The pool has a single connection, so both parts use the same backend; `capture:
true` records what it sends, the ROLLBACK of each return to the pool included (asyncpg's own
Transaction writes it `ROLLBACK;`).
"""

from _dialect import DRIVERS, Dialect, asyncpg_sent, by_driver


UPDATE = "UPDATE accounts SET balance = balance - 30 WHERE id = 1"
POOL_ROLLED_BACK = "the pool rolled back (reset on return)"
CONNECTION_ROLLED_BACK = "Connection.close() rolled back; the pool skipped its reset"

# What the pool's connection sends for each step, on psycopg2 and psycopg 3 alike.
SENT = {
    "app_checkout": [],
    "app_update": ["BEGIN", UPDATE],
    "app_return": ["ROLLBACK"],
    "app_connect": [],
    "app_update_again": ["BEGIN", UPDATE],
    "app_close": ["ROLLBACK"],
}

SCENARIO = {
    "name": "sqlalchemy-pool-reset-on-return",
    "title": "SQLAlchemy 2 reset on return: the pool rolls back a forgotten transaction and frees its locks",
    "summary": (
        "A connection checked out of SQLAlchemy's pool with engine.raw_connection() updates "
        "account 1 and is closed without a commit: the application forgot it. Meanwhile a teller "
        "deposits 50 into the same account and waits for the row lock. Closing a pooled connection "
        "returns it to the pool, and the pool calls rollback() on it (reset on return): the "
        "forgotten UPDATE is undone, the lock is released, and the teller's UPDATE goes ahead. The "
        "same mistake with a Core Connection (engine.connect(), execute, close without commit) ends "
        "the same way, but there it is Connection.close() that rolls back, and the pool's reset is "
        "skipped. Either way the account ends at 200: the two deposits, and neither of the "
        "forgotten withdrawals. At REPEATABLE READ and SERIALIZABLE the teller's waiting UPDATE "
        "does not fail: the transaction it waited for rolled back rather than committed."
    ),
    "tags": ["sqlalchemy", "driver", "python", "locks", "pool"],
    "references": [
        "https://docs.sqlalchemy.org/en/20/core/pooling.html#reset-on-return",
        "https://docs.sqlalchemy.org/en/20/core/events.html#sqlalchemy.events.PoolEvents.reset",
        "https://docs.sqlalchemy.org/en/20/core/connections.html#sqlalchemy.engine.Connection.close",
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-REPEATABLE-READ",
    ],
    "drivers": DRIVERS,
    "capture": True,
    "setup": "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);\nINSERT INTO accounts VALUES (1, 100);",
    "sessions": {"app": {}, "teller": {}},
    "steps": [
        {"name": "app_first_connect", "session": "app",
         "sql": "engine = create_engine(..., pool_size=1, max_overflow=0); with engine.connect(): pass",
         "narration": "The pool's only connection is opened, and the dialect runs its one-time queries."},
        {"name": "app_checkout", "session": "app", "sql": "raw = engine.raw_connection()",
         "narration": "A DBAPI connection checked out of the pool, as code that uses the driver directly does."},
        {"name": "app_update", "session": "app",
         "sql": f"cur = raw.cursor(); cur.execute('{UPDATE}'); return cur.rowcount",
         "narration": "The DBAPI connection begins a transaction (psycopg2 and psycopg by themselves, asyncpg through "
                      "SQLAlchemy's DBAPI adapter); the UPDATE takes the row lock."},
        {"name": "teller_deposit", "session": "teller",
         "sql": "UPDATE accounts SET balance = balance + 50 WHERE id = 1",
         "narration": "The teller's deposit waits for the row lock held by the pool's connection."},
        {"name": "app_return", "session": "app", "sql": "raw.close()  # no commit(): back to the pool",
         "narration": "The connection goes back to the pool, which calls rollback() on it: the forgotten "
                      "UPDATE is undone and its lock released, so the teller's UPDATE goes ahead."},
        {"name": "teller_commit", "session": "teller", "sql": "COMMIT"},
        {"name": "app_connect", "session": "app", "sql": "conn = engine.connect()",
         "narration": "The same mistake through a Core Connection (the same pooled connection underneath)."},
        {"name": "app_update_again", "session": "app",
         "sql": f"conn.execute(text('{UPDATE}')).rowcount",
         "narration": "Autobegin: BEGIN, then the UPDATE, which takes the row lock."},
        {"name": "teller_deposit_again", "session": "teller",
         "sql": "UPDATE accounts SET balance = balance + 50 WHERE id = 1"},
        {"name": "app_close", "session": "app", "sql": "conn.close()  # no commit()",
         "narration": "This time the Connection rolls back its own transaction before returning the "
                      "DBAPI connection, and the pool does not roll back a second time."},
        {"name": "teller_commit_again", "session": "teller", "sql": "COMMIT"},
    ],
    "invariants": {
        "forgotten_updates_undone": "SELECT balance = 200 FROM accounts WHERE id = 1",
    },
    "expect": {
        "all": by_driver({
            "sent": SENT,
            "blocked": ["teller_deposit", "teller_deposit_again"],
            "rows": {
                "app_update": [[1]],
                "app_return": [[POOL_ROLLED_BACK]],
                "app_update_again": [[1]],
                "app_close": [[CONNECTION_ROLLED_BACK]],
            },
            "invariants": {"forgotten_updates_undone": True},
            "note": (
                "the pool's connection runs at the server default (READ COMMITTED) whatever the run's "
                "level; the teller does run at the run's level, and since the transaction it waited for "
                "rolled back, its UPDATE proceeds at every level, with no serialization failure"
            ),
        }, asyncpg={"sent": asyncpg_sent(SENT)}),
    },
}

def play(run) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import event, text  # imported here: loading the catalogue need not import SQLAlchemy

    dialect = Dialect(run, pool_size=1, max_overflow=0)
    engine = dialect.engine
    resets = []  # what the pool's reset event reported, one entry per return to the pool

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_connection, connection_record, reset_state):  # type: ignore[no-untyped-def]
        resets.append(CONNECTION_ROLLED_BACK if reset_state.transaction_was_reset else POOL_ROLLED_BACK)

    held = {}  # the pooled connection or the Connection the application holds

    call = dialect.call

    def first_connect():  # type: ignore[no-untyped-def]
        with engine.connect():
            pass

    def checkout():  # type: ignore[no-untyped-def]
        held["raw"] = engine.raw_connection()

    def raw_update():  # type: ignore[no-untyped-def]
        cur = held["raw"].cursor()
        cur.execute(UPDATE)
        return cur.rowcount

    def give_back(name):  # type: ignore[no-untyped-def]
        def step():  # type: ignore[no-untyped-def]
            del resets[:]
            held.pop(name).close()
            return resets[-1] if resets else "the pool reported no reset"

        return step

    def connect():  # type: ignore[no-untyped-def]
        held["conn"] = engine.connect()

    try:
        call("app_first_connect", first_connect)
        call("app_checkout", checkout)
        run.watch("pool", held["raw"].driver_connection)  # the teller will wait for this backend
        call("app_update", raw_update)
        run.step("teller_deposit")
        call("app_return", give_back("raw"))
        run.step("teller_commit")
        call("app_connect", connect)
        call("app_update_again", lambda: held["conn"].execute(text(UPDATE)).rowcount)
        run.step("teller_deposit_again")
        call("app_close", give_back("conn"))
        run.step("teller_commit_again")
    finally:
        run.finish()
        dialect.close(*(thing.close for thing in held.values()))  # only if the run stopped early
