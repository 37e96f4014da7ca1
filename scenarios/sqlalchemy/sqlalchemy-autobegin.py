"""SQLAlchemy 2 "commit as you go": a Connection and a Session begin by themselves.

The psycopg2 lesson (the first statement opens a transaction, nothing is saved until
commit()) one layer up. A Python scenario, because the code under test is SQLAlchemy's:
each step runs real SQLAlchemy calls on an engine of the run's driver (see _dialect.py),
and `capture: true` records what went over the wire (BEGIN, COMMIT, the ROLLBACK on close).

The engine's connections are not txnlab sessions: in the timeline they are the
"other connection (pid N)" lines of the server view. The session `app` is the thread
(with asyncpg, the event loop) that drives them, first through Core (`core_` steps), then
the ORM (`orm_` steps); `observer` is a plain session in autocommit mode (like psql), so
each of its reads sees what is committed at that moment.
"""

from _dialect import DRIVERS, Dialect, asyncpg_sent, by_driver


SAME_AT_EVERY_LEVEL = (
    "the engine sets no isolation_level, so the driver sends a plain BEGIN and the server default "
    "(READ COMMITTED) applies whatever the run's level; the observer autocommits, so each of its "
    "reads sees the latest commit"
)

# What each step puts on the wire through psycopg2, which interpolates bound values into the SQL.
SENT = {
    "core_insert": ["BEGIN", "INSERT INTO notes VALUES (1, 'committed')"],
    "core_commit": ["COMMIT"],
    "core_insert_forgotten": ["BEGIN", "INSERT INTO notes VALUES (2, 'never committed')"],
    "core_close": ["ROLLBACK"],
    "orm_add": [],
    "orm_commit": ["BEGIN", "INSERT INTO notes (id, body) VALUES (3, 'committed')", "COMMIT"],
    "orm_add_flush": ["BEGIN", "INSERT INTO notes (id, body) VALUES (4, 'never committed')"],
    "orm_close": ["ROLLBACK"],
}
# psycopg 3 and asyncpg send the ORM's INSERT with bound parameters ($1), typed by SQLAlchemy.
ORM_INSERT = "INSERT INTO notes (id, body) VALUES ($1::INTEGER, $2::VARCHAR)"
SENT_PSYCOPG = {**SENT, "orm_commit": ["BEGIN", ORM_INSERT, "COMMIT"], "orm_add_flush": ["BEGIN", ORM_INSERT]}

SCENARIO = {
    "name": "sqlalchemy-autobegin",
    "title": "SQLAlchemy 2 commit as you go: the first execute begins, close() without commit() rolls back",
    "summary": (
        "SQLAlchemy 2 has no library-level autocommit: a Connection from engine.connect() and an "
        "ORM Session both begin a transaction by themselves (autobegin) and keep it open until "
        "commit(), rollback() or close(). Here a Connection inserts a note: the driver sends BEGIN "
        "just before the INSERT, and the observer cannot see the note until conn.commit() sends "
        "COMMIT. The next execute begins a new transaction; the note inserted there is never "
        "committed, and conn.close() sends ROLLBACK as the connection goes back to the pool. "
        "An ORM Session behaves the same, one step later: session.add() sends nothing, the "
        "INSERT goes out at the flush inside commit(), and what was flushed but not committed is "
        "rolled back by session.close(). Only notes 1 and 3 survive."
    ),
    "tags": ["sqlalchemy", "driver", "python"],
    "references": [
        "https://docs.sqlalchemy.org/en/20/core/connections.html#basic-usage",
        "https://docs.sqlalchemy.org/en/20/orm/session_transaction.html#managing-transactions",
        "https://docs.sqlalchemy.org/en/20/orm/session_transaction.html#commit-as-you-go",
        "https://docs.sqlalchemy.org/en/20/tutorial/dbapi_transactions.html",
    ],
    "drivers": DRIVERS,
    "capture": True,
    "setup": "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);",
    "sessions": {"app": {}, "observer": {"autocommit": True}},
    "steps": [
        {"name": "core_connect", "session": "app",
         "sql": "conn = engine.connect(); return conn.in_transaction()",
         "narration": "The engine's first connection: the driver connects and SQLAlchemy's dialect runs its "
                      "one-time queries (version, schema, isolation level; hstore's type, except with "
                      "asyncpg), each batch in a "
                      "transaction it rolls back. No transaction is open afterwards."},
        {"name": "core_insert", "session": "app",
         "sql": "conn.execute(text(\"INSERT INTO notes VALUES (1, 'committed')\")); return conn.in_transaction()",
         "narration": "The first execute begins a transaction (autobegin): the driver sends BEGIN right before the INSERT (asyncpg: `BEGIN;`, from its own Transaction)."},
        {"name": "observer_count_1", "session": "observer", "sql": "SELECT count(*) FROM notes",
         "narration": "The note is not committed, so nobody else sees it."},
        {"name": "core_commit", "session": "app",
         "sql": "conn.commit(); return conn.in_transaction()",
         "narration": "Commit as you go: COMMIT goes out, and the Connection is outside any transaction again."},
        {"name": "observer_count_2", "session": "observer", "sql": "SELECT count(*) FROM notes"},
        {"name": "core_insert_forgotten", "session": "app",
         "sql": "conn.execute(text(\"INSERT INTO notes VALUES (2, 'never committed')\")); return conn.in_transaction()",
         "narration": "The next execute begins a new transaction by itself."},
        {"name": "core_close", "session": "app", "sql": "conn.close()  # no commit()",
         "narration": "close() returns the connection to the pool and rolls back what was not committed: ROLLBACK goes out."},
        {"name": "observer_count_3", "session": "observer", "sql": "SELECT count(*) FROM notes",
         "narration": "Note 2 is gone."},
        {"name": "orm_add", "session": "app",
         "sql": "session = Session(engine); session.add(Note(id=3, body='committed')); return session.in_transaction()",
         "narration": "The Session starts its own (virtual) transaction, but nothing is sent yet: no connection "
                      "has been checked out, and the new Note waits for a flush."},
        {"name": "orm_commit", "session": "app", "sql": "session.commit(); return session.in_transaction()",
         "narration": "commit() flushes, then commits: BEGIN, INSERT and COMMIT all go out now."},
        {"name": "orm_add_flush", "session": "app",
         "sql": "session.add(Note(id=4, body='never committed')); session.flush(); return session.in_transaction()",
         "narration": "The Session begins again by itself; flush() sends the INSERT inside a new transaction."},
        {"name": "orm_close", "session": "app", "sql": "session.close()  # no commit()",
         "narration": "close() rolls back the flushed but uncommitted INSERT and releases the connection."},
        {"name": "observer_notes", "session": "observer", "sql": "SELECT id, body FROM notes ORDER BY id",
         "narration": "Only what was committed survives."},
    ],
    "invariants": {
        "only_committed_notes_survive": "SELECT array_agg(id ORDER BY id) = '{1,3}' FROM notes",
    },
    "expect": {
        "all": by_driver({
            "sent": SENT,
            "rows": {
                "core_connect": [[False]],
                "core_insert": [[True]],
                "observer_count_1": [[0]],
                "core_commit": [[False]],
                "observer_count_2": [[1]],
                "core_insert_forgotten": [[True]],
                "observer_count_3": [[1]],
                "orm_add": [[True]],
                "orm_commit": [[False]],
                "orm_add_flush": [[True]],
                "observer_notes": [[1, "committed"], [3, "committed"]],
            },
            "invariants": {"only_committed_notes_survive": True},
            "note": SAME_AT_EVERY_LEVEL,
        }, psycopg={"sent": SENT_PSYCOPG}, asyncpg={"sent": asyncpg_sent(SENT_PSYCOPG)}),
    },
}

def orm_models():  # type: ignore[no-untyped-def]
    """The mapped class, built when the scenario runs: loading the catalogue need not import SQLAlchemy."""
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    class Base(DeclarativeBase):
        pass

    class Note(Base):
        __tablename__ = "notes"

        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]

    return Note


def play(run) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    Note = orm_models()
    dialect = Dialect(run)
    engine = dialect.engine
    held = {}  # what the application holds between steps: a Connection, a Session

    call = dialect.call

    def core_connect():  # type: ignore[no-untyped-def]
        held["conn"] = engine.connect()
        return held["conn"].in_transaction()

    def core_insert(sql):  # type: ignore[no-untyped-def]
        held["conn"].execute(text(sql))
        return held["conn"].in_transaction()

    def core_commit():  # type: ignore[no-untyped-def]
        held["conn"].commit()
        return held["conn"].in_transaction()

    def orm_add():  # type: ignore[no-untyped-def]
        held["session"] = Session(engine)
        held["session"].add(Note(id=3, body="committed"))
        return held["session"].in_transaction()

    def orm_commit():  # type: ignore[no-untyped-def]
        held["session"].commit()
        return held["session"].in_transaction()

    def orm_add_flush():  # type: ignore[no-untyped-def]
        held["session"].add(Note(id=4, body="never committed"))
        held["session"].flush()
        return held["session"].in_transaction()

    try:
        call("core_connect", core_connect)
        call("core_insert", lambda: core_insert("INSERT INTO notes VALUES (1, 'committed')"))
        run.step("observer_count_1")
        call("core_commit", core_commit)
        run.step("observer_count_2")
        call("core_insert_forgotten", lambda: core_insert("INSERT INTO notes VALUES (2, 'never committed')"))
        call("core_close", lambda: held.pop("conn").close())
        run.step("observer_count_3")
        call("orm_add", orm_add)
        call("orm_commit", orm_commit)
        call("orm_add_flush", orm_add_flush)
        call("orm_close", lambda: held.pop("session").close())
        run.step("observer_notes")
    finally:
        run.finish()
        dialect.close(*(thing.close for thing in held.values()))  # only if the run stopped early
