"""isolation_level in SQLAlchemy 2: on the engine, per connection, and "AUTOCOMMIT".

The psycopg2 lesson "set_session(isolation_level=...) decides what BEGIN says" one layer
up. No dialect sends SQL to set a level: SQLAlchemy sets it on the driver (psycopg2's
set_isolation_level(), psycopg 3's isolation_level and autocommit attributes, the level
its asyncpg adapter gives asyncpg's Transaction), and the driver writes it into each BEGIN,
or, for AUTOCOMMIT, sends no BEGIN at all. Leaving AUTOCOMMIT, only psycopg2 sends
something (SET default_transaction_isolation TO DEFAULT). The timeline shows the BEGINs that result and what a
REPEATABLE READ and a READ COMMITTED reader see of a deposit committed between their two
reads.

The engine's levels are SQLAlchemy settings, so this scenario behaves the same at every
level of the run: its connections come from the run's driver (see _dialect.py), not from
the sessions txnlab configures. The session `app` drives the three Connections `rr`, `rc`
and `writer` (with asyncpg, on its one event loop); `dba` is pinned to psycopg2, whatever
the run's driver, because its step reads the server with a psycopg2 cursor.
"""

from _dialect import DRIVERS, Dialect, asyncpg_sent, by_driver

BALANCE = "SELECT balance FROM accounts WHERE id = 1"
STATES = "SELECT pid, state FROM pg_stat_activity WHERE pid = ANY(%s)"

# What each step puts on the wire through psycopg2 (psycopg 3 sends the same; asyncpg's
# Transaction ends BEGIN and ROLLBACK with a semicolon).
SENT = {
    "rr_read_1": ["BEGIN ISOLATION LEVEL REPEATABLE READ", BALANCE],
    "rc_read_1": ["BEGIN ISOLATION LEVEL READ COMMITTED", BALANCE],
    "writer_deposit": ["UPDATE accounts SET balance = balance + 50 WHERE id = 1"],
    "rr_read_2": [BALANCE],
    "rc_read_2": [BALANCE],
    "rr_close": ["ROLLBACK"],
    "rc_close": ["ROLLBACK"],
    "writer_close": ["SET default_transaction_isolation TO DEFAULT"],
}
SENT_PSYCOPG = {**SENT, "writer_close": []}

SCENARIO = {
    "name": "sqlalchemy-isolation-level",
    "title": "SQLAlchemy 2 isolation_level: engine-wide, per connection, and AUTOCOMMIT",
    "summary": (
        "One engine created with isolation_level='REPEATABLE READ', and three connections from it. "
        "The first keeps the engine's level: the driver sends BEGIN ISOLATION LEVEL REPEATABLE READ "
        "before its first SELECT. The second asks for execution_options(isolation_level='READ "
        "COMMITTED') and gets BEGIN ISOLATION LEVEL READ COMMITTED. The third asks for 'AUTOCOMMIT' "
        "and deposits 50 inside `with conn.begin():`, yet no driver sends BEGIN or COMMIT: "
        "the UPDATE commits on its own, and the server shows that connection idle, not idle in "
        "transaction like the two readers. Read again, the REPEATABLE READ reader still sees 100 "
        "(its snapshot is from its first read), the READ COMMITTED reader sees 150. On close, each "
        "per-connection level is reverted before the connection goes back to the pool; for the "
        "AUTOCOMMIT one psycopg2 (alone) sends SET default_transaction_isolation TO DEFAULT."
    ),
    "tags": ["sqlalchemy", "driver", "python", "isolation-level"],
    "references": [
        "https://docs.sqlalchemy.org/en/20/core/connections.html#setting-transaction-isolation-levels-including-dbapi-autocommit",
        "https://docs.sqlalchemy.org/en/20/dialects/postgresql.html#psycopg2-transaction-isolation-level",
        "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-REPEATABLE-READ",
        "https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW",
    ],
    "drivers": DRIVERS,
    "capture": True,
    "setup": "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);\nINSERT INTO accounts VALUES (1, 100);",
    "sessions": {"app": {}, "dba": {"autocommit": True, "driver": "psycopg2"}},
    "steps": [
        {"name": "rr_first_connect", "session": "app",
         "sql": "engine = create_engine(..., isolation_level='REPEATABLE READ'); with engine.connect(): pass",
         "narration": "The engine's first connection and the dialect's one-time queries, inside BEGIN "
                      "ISOLATION LEVEL REPEATABLE READ (psycopg2 looks up hstore's type first, before the "
                      "engine's level is set: plain BEGIN). Every new DBAPI connection gets the engine's level."},
        {"name": "rr_read_1", "session": "app",
         "sql": f"rr = engine.connect(); rr.execute(text('{BALANCE}')).scalar_one()",
         "narration": "The engine's level: BEGIN ISOLATION LEVEL REPEATABLE READ. The snapshot is taken "
                      "by this first SELECT."},
        {"name": "rc_read_1", "session": "app",
         "sql": ("rc = engine.connect().execution_options(isolation_level='READ COMMITTED'); "
                 f"rc.execute(text('{BALANCE}')).scalar_one()"),
         "narration": "A level for this connection only; it must be chosen before its transaction begins."},
        {"name": "writer_deposit", "session": "app",
         "sql": ("writer = engine.connect().execution_options(isolation_level='AUTOCOMMIT'); "
                 "with writer.begin(): writer.execute(text('UPDATE accounts SET balance = balance + 50 WHERE id = 1'))"),
         "narration": "AUTOCOMMIT is the driver's autocommit mode: no BEGIN, no COMMIT, even inside "
                      "`with writer.begin():`. The UPDATE is committed as soon as it ends."},
        {"name": "dba_states", "session": "dba",
         "sql": f"{STATES}  -- the backend pids of rr, rc and writer",
         "narration": "What the server sees: both readers hold a transaction open; the AUTOCOMMIT "
                      "connection has none."},
        {"name": "rr_read_2", "session": "app", "sql": f"rr.execute(text('{BALANCE}')).scalar_one()",
         "narration": "REPEATABLE READ: the same snapshot, so the deposit does not appear."},
        {"name": "rc_read_2", "session": "app", "sql": f"rc.execute(text('{BALANCE}')).scalar_one()",
         "narration": "READ COMMITTED: a new snapshot per statement, so the deposit appears."},
        {"name": "rr_close", "session": "app", "sql": "rr.close()",
         "narration": "ROLLBACK ends the reader's transaction (it wrote nothing)."},
        {"name": "rc_close", "session": "app", "sql": "rc.close()",
         "narration": "ROLLBACK; the connection's level goes back to the engine's, without sending anything."},
        {"name": "writer_close", "session": "app", "sql": "writer.close()",
         "narration": "Nothing to roll back. SQLAlchemy reverts the connection to the engine's level; "
                      "leaving autocommit mode, psycopg2 resets the server's session default (SET "
                      "default_transaction_isolation TO DEFAULT); psycopg 3 and asyncpg send nothing."},
    ],
    "expect": {
        "all": by_driver({
            "sent": SENT,
            "rows": {
                "rr_read_1": [[100]],
                "rc_read_1": [[100]],
                "writer_deposit": [[1]],
                "dba_states": [["rr: idle in transaction; rc: idle in transaction; writer: idle"]],
                "rr_read_2": [[100]],
                "rc_read_2": [[150]],
            },
            "note": (
                "the levels here are SQLAlchemy settings (the engine's REPEATABLE READ, the connections' "
                "READ COMMITTED and AUTOCOMMIT) applied to connections the scenario opens itself, so the "
                "run's level changes nothing; the dba session only reads pg_stat_activity"
            ),
        }, psycopg={"sent": SENT_PSYCOPG}, asyncpg={"sent": asyncpg_sent(SENT_PSYCOPG)}),
    },
}

def play(run) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text  # imported here: loading the catalogue need not import SQLAlchemy

    from txnlab.runner.script import backend_pid

    dialect = Dialect(run, isolation_level="REPEATABLE READ")
    engine = dialect.engine
    held = {}  # name -> Connection, while the application holds it
    pids = {}  # name -> backend pid, read from the driver (no query), for the dba's look at the server

    call = dialect.call  # call(name, function): the declared step, as SQLAlchemy code

    def connect(name, **options):  # type: ignore[no-untyped-def]
        conn = engine.connect()
        if options:
            conn = conn.execution_options(**options)
        held[name] = conn
        pids[name] = backend_pid(conn.connection.driver_connection)
        return conn

    def first_connect():  # type: ignore[no-untyped-def]
        with engine.connect():
            pass

    def read(name, **options):  # type: ignore[no-untyped-def]
        def step():  # type: ignore[no-untyped-def]
            conn = held.get(name) or connect(name, **options)
            return conn.execute(text(BALANCE)).scalar_one()

        return step

    def deposit():  # type: ignore[no-untyped-def]
        writer = connect("writer", isolation_level="AUTOCOMMIT")
        with writer.begin():
            return writer.execute(text("UPDATE accounts SET balance = balance + 50 WHERE id = 1")).rowcount

    def states(own_conn):  # type: ignore[no-untyped-def]
        """The dba session's own psycopg2 connection asks the server about the engine's connections."""
        with own_conn.cursor() as cur:
            cur.execute(STATES, [list(pids.values())])
            by_pid = dict(cur.fetchall())
        return "; ".join(f"{name}: {by_pid.get(pid)}" for name, pid in pids.items())

    def close(name):  # type: ignore[no-untyped-def]
        return lambda: held.pop(name).close()

    try:
        call("rr_first_connect", first_connect)
        call("rr_read_1", read("rr"))
        call("rc_read_1", read("rc", isolation_level="READ COMMITTED"))
        call("writer_deposit", deposit)
        run.step("dba_states", states)
        call("rr_read_2", read("rr"))
        call("rc_read_2", read("rc"))
        call("rr_close", close("rr"))
        call("rc_close", close("rc"))
        call("writer_close", close("writer"))
    finally:
        run.finish()
        dialect.close(*(conn.close for conn in held.values()))  # only if the run stopped early
