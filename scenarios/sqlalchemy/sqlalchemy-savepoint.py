"""begin_nested(): a SAVEPOINT lets a transaction survive an IntegrityError.

The same import of three users runs twice. First on a Core Connection with no savepoint,
as many applications write it: catch the IntegrityError of the duplicate and go on. In
PostgreSQL that does not work: after an error the whole transaction is aborted, every
later statement fails with 25P02, and the final COMMIT is turned into a rollback (no
dialect reports an error for it: psycopg2, psycopg 3 and asyncpg alike). Then with an ORM Session that wraps each row in
`with session.begin_nested():`, the pattern SQLAlchemy's documentation gives for exactly
this case: the duplicate's INSERT is rolled back to its SAVEPOINT and the rest commits.

The application catches the exceptions itself, as the real code would, and each step
returns what it caught: the exception class and the SQLSTATE it carries.
"""

from _dialect import DRIVERS, Dialect, asyncpg_sent, by_driver


USERS = "SELECT email FROM users ORDER BY email"


def caught(error) -> str:  # type: ignore[no-untyped-def]
    """What the application sees: SQLAlchemy's exception class, and the driver's SQLSTATE inside it."""
    sqlstate = getattr(error.orig, "pgcode", None) or error.orig.sqlstate  # psycopg2 and asyncpg's adapter; psycopg 3
    return f"{type(error).__name__} {sqlstate}"


ROWS = {
    "careless_bob": [[1]],
    "careless_alice": [["IntegrityError 23505"]],
    "careless_carol": [["InternalError 25P02"]],
    "observer_users_1": [["alice@example.com"]],
    "importer_bob": [["imported"]],
    "importer_alice": [["IntegrityError 23505"]],
    "importer_carol": [["imported"]],
    "observer_users_2": [["alice@example.com"]],
    "observer_users_3": [["alice@example.com"], ["bob@example.com"], ["carol@example.com"]],
}


INSERT = "INSERT INTO users VALUES ({}, {})"
ORM_INSERT = "INSERT INTO users (email, name) VALUES ({}, {})"
# What each step puts on the wire through psycopg2, which interpolates the ORM's values.
SENT = {
    "careless_bob": ["BEGIN", INSERT.format("'bob@example.com'", "'Bob'")],
    "careless_alice": [INSERT.format("'alice@example.com'", "'Alice'")],
    "careless_carol": [INSERT.format("'carol@example.com'", "'Carol'")],
    "careless_commit": ["COMMIT"],
    "importer_bob": ["BEGIN", "SAVEPOINT sa_savepoint_1", ORM_INSERT.format("'bob@example.com'", "'Bob'"),
                     "RELEASE SAVEPOINT sa_savepoint_1"],
    "importer_alice": ["SAVEPOINT sa_savepoint_2", ORM_INSERT.format("'alice@example.com'", "'Alice'"),
                       "ROLLBACK TO SAVEPOINT sa_savepoint_2"],
    "importer_carol": ["SAVEPOINT sa_savepoint_3", ORM_INSERT.format("'carol@example.com'", "'Carol'"),
                       "RELEASE SAVEPOINT sa_savepoint_3"],
    "importer_commit": ["COMMIT"],
}
# psycopg 3 and asyncpg bind the ORM's values ($1, typed by SQLAlchemy).
BOUND = ORM_INSERT.format("$1::VARCHAR", "$2::VARCHAR")
SENT_BOUND = {
    **SENT,
    "importer_bob": ["BEGIN", "SAVEPOINT sa_savepoint_1", BOUND, "RELEASE SAVEPOINT sa_savepoint_1"],
    "importer_alice": ["SAVEPOINT sa_savepoint_2", BOUND, "ROLLBACK TO SAVEPOINT sa_savepoint_2"],
    "importer_carol": ["SAVEPOINT sa_savepoint_3", BOUND, "RELEASE SAVEPOINT sa_savepoint_3"],
}

SCENARIO = {
    "name": "sqlalchemy-savepoint",
    "title": "SQLAlchemy 2 begin_nested(): a SAVEPOINT undoes the failed INSERT, the rest commits",
    "summary": (
        "An import of three users (bob, alice, carol) in one transaction; alice is already in the "
        "table, so her INSERT fails with a unique violation (23505). Without a savepoint, catching "
        "the IntegrityError in Python does not save the transaction: PostgreSQL has aborted it, "
        "carol's INSERT fails with 25P02 (current transaction is aborted), and conn.commit() sends "
        "COMMIT, returns without an error, and the server rolls everything back: bob is lost too. "
        "With `with session.begin_nested():` around each row, SQLAlchemy sends SAVEPOINT before "
        "each INSERT, RELEASE SAVEPOINT after a good one and ROLLBACK TO SAVEPOINT after the "
        "duplicate; the transaction stays usable, and session.commit() keeps bob and carol."
    ),
    "tags": ["sqlalchemy", "driver", "python", "savepoint"],
    "references": [
        "https://docs.sqlalchemy.org/en/20/orm/session_transaction.html#using-savepoint",
        "https://docs.sqlalchemy.org/en/20/core/connections.html#sqlalchemy.engine.Connection.begin_nested",
        "https://www.postgresql.org/docs/current/sql-savepoint.html",
        "https://www.postgresql.org/docs/current/sql-commit.html",
    ],
    "drivers": DRIVERS,
    "capture": True,
    "setup": (
        "CREATE TABLE users (email text PRIMARY KEY, name text NOT NULL);\n"
        "INSERT INTO users VALUES ('alice@example.com', 'Alice');"
    ),
    "sessions": {"app": {}, "observer": {"autocommit": True}},
    "steps": [
        {"name": "careless_connect", "session": "app", "sql": "conn = engine.connect()",
         "narration": "The engine's first connection: the dialect's one-time queries, each batch rolled back."},
        {"name": "careless_bob", "session": "app",
         "sql": "conn.execute(text(\"INSERT INTO users VALUES ('bob@example.com', 'Bob')\")).rowcount",
         "narration": "Without a savepoint. The first INSERT begins the transaction."},
        {"name": "careless_alice", "session": "app",
         "sql": ("try: conn.execute(text(\"INSERT INTO users VALUES ('alice@example.com', 'Alice')\")) "
                 "except IntegrityError as exc: return caught(exc)"),
         "narration": "Alice is a duplicate. The application catches the IntegrityError and goes on, "
                      "but on the server the transaction is now aborted."},
        {"name": "careless_carol", "session": "app",
         "sql": ("try: conn.execute(text(\"INSERT INTO users VALUES ('carol@example.com', 'Carol')\")) "
                 "except DBAPIError as exc: return caught(exc)"),
         "narration": "Every statement after the error fails with 25P02 until the transaction ends. "
                      "psycopg2 and psycopg 3 raise InternalError; SQLAlchemy's asyncpg adapter a plain "
                      "DBAPIError, so `except InternalError` would not catch it there."},
        {"name": "careless_commit", "session": "app", "sql": "conn.commit(); conn.close()",
         "narration": "COMMIT goes out and commit() returns without an error, but a failed transaction "
                      "cannot commit: PostgreSQL ends it with a rollback."},
        {"name": "observer_users_1", "session": "observer", "sql": USERS,
         "narration": "Nothing was imported, not even bob."},
        {"name": "importer_bob", "session": "app",
         "sql": ("session = Session(engine); with session.begin_nested(): "
                 "session.add(User(email='bob@example.com', name='Bob'))"),
         "narration": "With a savepoint per row. begin_nested() begins the transaction and sends "
                      "SAVEPOINT; the block's end flushes the INSERT and releases the savepoint."},
        {"name": "importer_alice", "session": "app",
         "sql": ("try: with session.begin_nested(): session.add(User(email='alice@example.com', name='Alice')) "
                 "except IntegrityError as exc: return caught(exc)"),
         "narration": "The duplicate fails inside its savepoint: SQLAlchemy sends ROLLBACK TO SAVEPOINT "
                      "and re-raises, and the application skips the row."},
        {"name": "importer_carol", "session": "app",
         "sql": ("with session.begin_nested(): "
                 "session.add(User(email='carol@example.com', name='Carol'))"),
         "narration": "The transaction is still usable: carol's INSERT works."},
        {"name": "observer_users_2", "session": "observer", "sql": USERS,
         "narration": "Not committed yet, so still only alice."},
        {"name": "importer_commit", "session": "app", "sql": "session.commit(); session.close()"},
        {"name": "observer_users_3", "session": "observer", "sql": USERS,
         "narration": "bob and carol were imported; the duplicate was skipped."},
    ],
    "invariants": {
        "import_kept_the_good_rows": (
            "SELECT array_agg(email ORDER BY email) = "
            "'{alice@example.com,bob@example.com,carol@example.com}' FROM users"
        ),
    },
    "expect": {
        # SQLAlchemy's asyncpg adapter maps asyncpg's InFailedSQLTransactionError to no DBAPI
        # subclass: the application catches a plain DBAPIError (psycopg2 and psycopg: InternalError).
        "all": by_driver({
            "sent": SENT,
            "rows": ROWS,
            "invariants": {"import_kept_the_good_rows": True},
            "note": (
                "the engine sets no isolation_level, so both imports run at the server default "
                "(READ COMMITTED) whatever the run's level; an error aborts a PostgreSQL transaction "
                "at every level, and the observer autocommits"
            ),
        }, psycopg={"sent": SENT_BOUND}, asyncpg={
            "sent": asyncpg_sent(SENT_BOUND), "rows": {**ROWS, "careless_carol": [["DBAPIError 25P02"]]},
        }),
    },
}

def orm_models():  # type: ignore[no-untyped-def]
    """The mapped class, built when the scenario runs: loading the catalogue need not import SQLAlchemy."""
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "users"

        email: Mapped[str] = mapped_column(primary_key=True)
        name: Mapped[str]

    return User


def play(run) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import exc, text
    from sqlalchemy.orm import Session

    User = orm_models()
    dialect = Dialect(run)
    engine = dialect.engine
    held = {}  # the Connection and the Session the application keeps between steps

    call = dialect.call

    def connect():  # type: ignore[no-untyped-def]
        held["conn"] = engine.connect()

    def careless_insert(sql):  # type: ignore[no-untyped-def]
        try:
            return held["conn"].execute(text(sql)).rowcount
        except exc.DBAPIError as error:  # IntegrityError, InternalError (25P02) ...
            return caught(error)

    def careless_commit():  # type: ignore[no-untyped-def]
        held["conn"].commit()
        held.pop("conn").close()

    def import_row(email, name):  # type: ignore[no-untyped-def]
        session = held.setdefault("session", Session(engine))
        try:
            with session.begin_nested():
                session.add(User(email=email, name=name))
        except exc.IntegrityError as error:
            return caught(error)
        return "imported"

    def commit():  # type: ignore[no-untyped-def]
        held["session"].commit()
        held.pop("session").close()

    try:
        call("careless_connect", connect)
        call("careless_bob", lambda: careless_insert("INSERT INTO users VALUES ('bob@example.com', 'Bob')"))
        call("careless_alice", lambda: careless_insert("INSERT INTO users VALUES ('alice@example.com', 'Alice')"))
        call("careless_carol", lambda: careless_insert("INSERT INTO users VALUES ('carol@example.com', 'Carol')"))
        call("careless_commit", careless_commit)
        run.step("observer_users_1")
        call("importer_bob", lambda: import_row("bob@example.com", "Bob"))
        call("importer_alice", lambda: import_row("alice@example.com", "Alice"))
        call("importer_carol", lambda: import_row("carol@example.com", "Carol"))
        run.step("observer_users_2")
        call("importer_commit", commit)
        run.step("observer_users_3")
    finally:
        run.finish()
        dialect.close(*(thing.close for thing in held.values()))  # only if the run stopped early
