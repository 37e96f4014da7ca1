"""asyncpg sessions against the real server, driven directly from one thread as the runner's
worker drives a session: the server's exact text of every value (the same as psycopg2
reads), transactions begun the way asyncpg code begins them (read back from a real wire
tap), the server's answers, lock waits, a terminated backend, and a clean session after.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import asyncpg
import psycopg2
import psycopg2.extensions
import pytest
from scenario_text import scenario_from_yaml

from txnlab.errors import ScenarioError
from txnlab.levels import Level
from txnlab.runner.drivers.asyncpg import AsyncpgSession, connect_arguments
from txnlab.runner.drivers.psycopg2 import server_text_cursor, take_notices
from txnlab.runner.execute import ConnectionLost
from txnlab.runner.wiretap import WireTap
from txnlab.scenario import Scenario

TYPES_SCHEMA = "txnlab_asyncpg_types"

SCENARIO = """
name: asyncpg-session
title: asyncpg session
summary: one session of each kind.
sessions:
  app: {}
  plain: {autocommit: true}
  ro: {read_only: true, deferrable: true, level: serializable}
  busy:
    setup:
      - CREATE TEMP TABLE scratch (id int)
      - SELECT pg_advisory_lock(42)
      - LISTEN news
  bad_setup:
    setup:
      - SELECT 1
      - SELECT * FROM no_such_table
  bad_teardown: {teardown: [SELECT 1 FROM nowhere]}
steps:
  - {name: s1, session: app, sql: SELECT 1}
  - {name: s2, session: plain, sql: SELECT 1}
  - {name: s3, session: ro, sql: SELECT 1}
  - {name: s4, session: busy, sql: SELECT 1}
  - {name: s5, session: bad_setup, sql: SELECT 1}
  - {name: s6, session: bad_teardown, sql: SELECT 1}
expect:
  all: {}
"""


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return scenario_from_yaml(SCENARIO, "asyncpg.yaml")


@pytest.fixture(scope="module")
def types_dsn(scratch_dsn: str) -> Iterator[str]:
    """The scratch database, with user types of every kind asyncpg treats apart."""
    conn = psycopg2.connect(scratch_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            f"DROP SCHEMA IF EXISTS {TYPES_SCHEMA} CASCADE; CREATE SCHEMA {TYPES_SCHEMA}; "
            f"SET search_path = {TYPES_SCHEMA}; "
            "CREATE TYPE mood AS ENUM ('sad', 'o''k', 'très bien'); "
            "CREATE TYPE pair AS (n int, label text, at date); "
            "CREATE DOMAIN positive AS numeric CHECK (VALUE > 0); "
            "CREATE TYPE floatrange AS RANGE (subtype = float8); "
            "CREATE TABLE accounts (id int PRIMARY KEY, balance int)"
        )
    yield scratch_dsn
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA {TYPES_SCHEMA} CASCADE")
    conn.close()


@pytest.fixture
def session(types_dsn: str) -> Iterator[AsyncpgSession]:
    session = AsyncpgSession(types_dsn)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def reference(types_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """A psycopg2 connection reading the server's text, as the psycopg2 sessions do."""
    conn = psycopg2.connect(types_dsn)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def tap(server_dsn: str) -> Iterator[WireTap]:
    tap = WireTap(server_dsn)
    try:
        yield tap
    finally:
        tap.close()


SETTINGS = {
    "iso": "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'",
    "sql-dmy": "SET TimeZone = 'America/New_York'; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard'",
    "german": "SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'German'; SET IntervalStyle = 'postgres_verbose'",
    "postgres": "SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'Postgres, YMD'; SET IntervalStyle = 'iso_8601'",
}
VALUES = {
    "ints": "SELECT 1::int2, (-2147483648)::int4, 9223372036854775807::int8, NULL::int4",
    "numeric": "SELECT 123.4500::numeric, 'NaN'::numeric, 1e-30::numeric, -0.0::numeric(5,2)",
    "floats": "SELECT 'Infinity'::float8, '-Infinity'::float4, 'NaN'::float8, 0.1::float8, 1e300::float8, -0.0::float8",
    "text": "SELECT 'it''s \"q\" \\ ünï ✓'::text, ''::text, 'x'::char(3), 'v'::varchar, 'n'::name",
    "bytea": "SELECT '\\x00ff27'::bytea, ''::bytea",
    "bool": "SELECT true, false, NULL::bool",
    "times": (
        "SELECT '2024-02-29'::date, '23:59:59.5'::time, '12:00+05:30'::timetz, "
        "'2024-03-10 02:30:00'::timestamp, '2024-03-10 07:30:00+00'::timestamptz, 'infinity'::timestamptz, "
        "'4713-01-01 BC'::date"
    ),
    "intervals": "SELECT '1 year 2 mons 3 days 04:05:06.7'::interval, '-1 day +02:00'::interval, '0'::interval",
    "arrays": (
        "SELECT ARRAY[1, NULL, 3], ARRAY[[1, 2], [3, 4]], ARRAY['a\"b', NULL, 'NULL', 'x y', ''], "
        "'{}'::int[], '[0:1]={7,8}'::int[], ARRAY['2024-01-01'::date], ARRAY[1.50::numeric]"
    ),
    "composites": (
        f"SELECT ROW(1, 'a b', NULL), ROW(2, 'q\"', '2024-01-01')::{TYPES_SCHEMA}.pair, "
        f"ARRAY[ROW(3, NULL, NULL)::{TYPES_SCHEMA}.pair]"
    ),
    "ranges": (
        f"SELECT int4range(1, 5), '[2024-01-01,)'::daterange, 'empty'::numrange, "
        f"{TYPES_SCHEMA}.floatrange(0.5, 1.5), int4multirange(int4range(1, 2), int4range(5, 9))"
    ),
    "enums-domains": (
        f"SELECT 'o''k'::{TYPES_SCHEMA}.mood, ARRAY['très bien'::{TYPES_SCHEMA}.mood], "
        f"1.50::{TYPES_SCHEMA}.positive"
    ),
    "json": "SELECT '{\"b\": 1,  \"a\": [1, 2.50]}'::json, '{\"b\": 1,  \"a\": [1, 2.50]}'::jsonb, 'null'::jsonb",
    "uuid-net": "SELECT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid, '192.168.0.1/24'::inet, '10.0.0.0/8'::cidr, "
    "'08:00:2b:01:02:03'::macaddr",
    "geometry-misc": "SELECT '(1,2)'::point, '1.5'::money, 'a & b'::tsquery, '0/16B3748'::pg_lsn, 'pg_class'::regclass",
}


def psycopg2_text(conn: psycopg2.extensions.connection, settings: str, sql: str) -> tuple[tuple, tuple]:
    with conn.cursor() as cur:
        cur.execute(settings)
    with server_text_cursor(conn) as cur:
        cur.execute(sql)
        return tuple(d.name for d in cur.description), tuple(tuple(row) for row in cur.fetchall())


@pytest.mark.parametrize("style", SETTINGS)
@pytest.mark.parametrize("kind", VALUES)
def test_values_are_the_servers_text_the_same_as_psycopg2_reads(
    session: AsyncpgSession, reference: psycopg2.extensions.connection, kind: str, style: str
) -> None:
    settings, sql = SETTINGS[style], VALUES[kind]
    expected_columns, expected_rows = psycopg2_text(reference, settings, sql)
    assert session.execute(settings).error is None
    result = session.execute(sql)
    assert result.error is None
    assert (result.columns, result.rows) == (expected_columns, expected_rows)
    assert all(isinstance(value, str) or value is None for row in result.rows for value in row)
    assert result.styles == tuple(reference.get_parameter_status(name) for name in ("DateStyle", "IntervalStyle"))


def test_a_user_type_asyncpg_has_no_codec_for_comes_back_as_the_servers_text(
    session: AsyncpgSession, reference: psycopg2.extensions.connection
) -> None:
    with reference.cursor() as cur:
        try:
            cur.execute(f"CREATE EXTENSION IF NOT EXISTS citext SCHEMA {TYPES_SCHEMA}")
        except psycopg2.Error as exc:
            pytest.skip(f"the citext extension cannot be created here: {exc.pgerror}")
    sql = f"SELECT 'MiXed'::{TYPES_SCHEMA}.citext, ARRAY['a'::{TYPES_SCHEMA}.citext, NULL]"
    result = session.execute(sql)
    assert result.error is None
    assert result.rows == psycopg2_text(reference, "SELECT 1", sql)[1] == (("MiXed", "{a,NULL}"),)


def test_python_steps_still_get_asyncpg_values_and_asyncpg_does_not_introspect_again(
    server_dsn: str, types_dsn: str, tap: WireTap
) -> None:
    session = AsyncpgSession(tap.dsn(types_dsn))
    try:
        assert session.execute("SELECT ARRAY[1, 2]").rows == (("{1,2}",),)
        assert any("typeinfo_tree" in message for message in tap.take(session.pid))  # asyncpg's first meeting
        assert session.call(lambda conn: conn.fetchval("SELECT ARRAY[3, 4]")).rows == (([3, 4],),)
        assert session.execute("SELECT ARRAY[5]").rows == (("{5}",),)
        assert session.call(lambda conn: conn.fetchval("SELECT ARRAY[6]")).rows == (([6],),)
        assert tap.take(session.pid) == ("SELECT ARRAY[3, 4]", "SELECT ARRAY[5]", "SELECT ARRAY[6]")
    finally:
        session.close()


def test_a_column_decoded_by_the_applications_own_codec_is_named_so(session: AsyncpgSession) -> None:
    async def json_codec(conn) -> None:  # type: ignore[no-untyped-def]
        await conn.set_type_codec("json", schema="pg_catalog", encoder=json.dumps, decoder=json.loads)

    assert session.call(json_codec).error is None
    result = session.execute("SELECT '{\"a\": 1}'::json AS j, 1 AS n")
    assert result.rows == (({"a": 1}, "1"),)
    assert result.column_types == ("json (the application's codec)", "int4")
    assert session.call(lambda conn: conn.fetchval("SELECT '[1]'::json")).rows == (([1],),)


def test_a_step_of_several_statements_runs_them_all_and_returns_the_last_status_without_rows(
    session: AsyncpgSession,
) -> None:
    result = session.execute("CREATE TEMP TABLE several (n int); INSERT INTO several VALUES (1), (2)")
    assert (result.error, result.rows, result.status, result.rowcount) == (None, None, "INSERT 0 2", 2)
    assert session.execute("SELECT n FROM several ORDER BY n").rows == (("1",), ("2",))


@pytest.mark.parametrize(
    "sql",
    ["SELECT g FROM generate_series(1, 3) g", "UPDATE accounts SET balance = balance + 1",
     "INSERT INTO accounts VALUES (9, 0)", "DELETE FROM accounts WHERE id = 9", "SET work_mem = '8MB'",
     "UPDATE accounts SET balance = 0 WHERE id < 0 RETURNING id"],
)
def test_rowcount_and_command_status_are_the_servers(
    session: AsyncpgSession, reference: psycopg2.extensions.connection, sql: str
) -> None:
    with reference.cursor() as cur:
        cur.execute(f"SET search_path = {TYPES_SCHEMA}; DELETE FROM accounts; INSERT INTO accounts VALUES (1, 1), (2, 2)")
        cur.execute(sql)
        expected = (cur.statusmessage, cur.rowcount if cur.rowcount >= 0 else None)
        cur.execute("DELETE FROM accounts; INSERT INTO accounts VALUES (1, 1), (2, 2)")
    session.execute(f"SET search_path = {TYPES_SCHEMA}")
    result = session.execute(sql)
    assert (result.status, result.rowcount) == expected


def test_notices_are_reported_as_psycopg2_reports_them(
    session: AsyncpgSession, reference: psycopg2.extensions.connection
) -> None:
    sql = "DO $$ BEGIN RAISE NOTICE 'first'; RAISE WARNING 'second %', 2; END $$"
    with reference.cursor() as cur:
        cur.execute(sql)
    expected = take_notices(reference)
    assert session.execute(sql).notices == expected == ("NOTICE:  first", "WARNING:  second 2")
    assert session.execute("SELECT 1").notices == ()


def test_an_error_keeps_its_sqlstate_message_detail_and_the_failed_transaction(
    scenario: Scenario, session: AsyncpgSession
) -> None:
    session.configure(scenario, scenario.session("app"), Level.READ_COMMITTED, TYPES_SCHEMA)
    session.execute("DELETE FROM accounts")
    session.execute("INSERT INTO accounts VALUES (1, 0)")
    result = session.execute("INSERT INTO accounts VALUES (1, 0)")
    assert result.error is not None
    assert (result.error.sqlstate, result.error.message, result.error.detail) == (
        "23505", 'duplicate key value violates unique constraint "accounts_pkey"', "Key (id)=(1) already exists."
    )
    assert result.error.exception == "asyncpg.exceptions.UniqueViolationError"
    assert (result.transaction_status, session.driver_status()) == ("in failed transaction", "is_in_transaction() = True")
    again = session.execute("SELECT 1")
    assert again.error is not None and again.error.sqlstate == "25P02"
    assert again.transaction_status == "in failed transaction"
    assert not session.lost(RuntimeError()) and not session.broken


@pytest.mark.parametrize("level", [*Level, None], ids=lambda level: level.short if level else "default")
def test_a_session_begins_through_conn_transaction_as_asyncpg_code_does(
    scenario: Scenario, types_dsn: str, tap: WireTap, level: Level | None
) -> None:
    session = AsyncpgSession(tap.dsn(types_dsn))
    try:
        session.configure(scenario, scenario.session("app"), level or Level.READ_COMMITTED, TYPES_SCHEMA)
        tap.take(session.pid)
        if level is None:  # the server's default: asyncpg's transaction() without a level
            session.isolation = None
        first = session.execute("SELECT current_setting('transaction_isolation')")
        begin = "BEGIN" + (f" ISOLATION LEVEL {level.sql}" if level else "") + ";"
        assert tap.take(session.pid) == (begin, "SELECT current_setting('transaction_isolation')")
        assert first.rows == (((level or Level.READ_COMMITTED).value,),)
        assert (first.transaction_status, session.driver_status()) == ("in transaction", "is_in_transaction() = True")
        commit = session.execute("COMMIT")
        assert (commit.status, commit.transaction_status, commit.driver_sent_nothing) == ("COMMIT", "idle", False)
        assert tap.take(session.pid) == ("COMMIT;",)
    finally:
        session.close()


def test_read_only_deferrable_sessions_begin_so(scenario: Scenario, types_dsn: str, tap: WireTap) -> None:
    session = AsyncpgSession(tap.dsn(types_dsn))
    try:
        session.configure(scenario, scenario.session("ro"), Level.READ_COMMITTED, TYPES_SCHEMA)
        tap.take(session.pid)
        assert session.execute("SELECT 1").error is None
        assert tap.take(session.pid) == ("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE;", "SELECT 1")
        assert session.execute("UPDATE accounts SET balance = 0").error.sqlstate == "25006"
    finally:
        session.close()


def test_commit_in_a_failed_transaction_is_answered_rollback_and_ends_it(
    scenario: Scenario, types_dsn: str, tap: WireTap
) -> None:
    session = AsyncpgSession(tap.dsn(types_dsn))
    try:
        session.configure(scenario, scenario.session("app"), Level.REPEATABLE_READ, TYPES_SCHEMA)
        assert session.execute("SELECT 1/0").error.sqlstate == "22012"
        tap.take(session.pid)
        commit = session.execute("COMMIT")
        assert (commit.error, commit.status, commit.transaction_status) == (None, "ROLLBACK", "idle")
        assert tap.take(session.pid) == ("COMMIT;",)
        assert session.execute("SELECT 1").transaction_status == "in transaction"  # a new one begins
    finally:
        session.close()


def test_commit_or_rollback_with_no_transaction_open_sends_nothing(
    scenario: Scenario, types_dsn: str, tap: WireTap
) -> None:
    session = AsyncpgSession(tap.dsn(types_dsn))
    try:
        session.configure(scenario, scenario.session("app"), Level.READ_COMMITTED, TYPES_SCHEMA)
        tap.take(session.pid)
        for sql in ("COMMIT", "ROLLBACK"):
            result = session.execute(sql)
            assert (result.status, result.driver_sent_nothing, result.transaction_status) == (None, True, "idle")
        assert tap.take(session.pid) == ()
    finally:
        session.close()


def test_an_autocommit_session_sends_steps_as_written_and_asyncpg_sees_an_explicit_begin(
    scenario: Scenario, types_dsn: str, tap: WireTap
) -> None:
    session = AsyncpgSession(tap.dsn(types_dsn))
    try:
        session.configure(scenario, scenario.session("plain"), Level.REPEATABLE_READ, TYPES_SCHEMA)
        tap.take(session.pid)
        assert session.execute("SELECT 1").transaction_status == "idle"
        begin = session.execute("BEGIN")
        assert (begin.status, begin.transaction_status, session.driver_status()) == (
            "BEGIN", "in transaction", "is_in_transaction() = True"
        )
        level = session.execute("SHOW transaction_isolation")
        assert level.rows == (("repeatable read",),)  # the session default set for an explicit BEGIN
        commit = session.execute("COMMIT")
        assert (commit.status, commit.transaction_status, commit.driver_sent_nothing) == ("COMMIT", "idle", False)
        assert tap.take(session.pid) == ("SELECT 1", "BEGIN", "SHOW transaction_isolation", "COMMIT")
    finally:
        session.close()


def test_a_step_blocked_on_a_lock_waits_until_the_lock_is_released(
    scenario: Scenario, types_dsn: str, reference: psycopg2.extensions.connection
) -> None:
    holder, waiter = AsyncpgSession(types_dsn), AsyncpgSession(types_dsn)
    results: list = []
    thread = threading.Thread(target=lambda: results.append(waiter.execute("INSERT INTO accounts VALUES (7, 1)")))
    try:
        for session in (holder, waiter):
            session.configure(scenario, scenario.session("app"), Level.READ_COMMITTED, TYPES_SCHEMA)
        holder.execute("DELETE FROM accounts")
        holder.execute("COMMIT")
        holder.execute("INSERT INTO accounts VALUES (7, 0)")
        thread.start()
        assert waits_for_a_lock(reference, waiter.pid)
        time.sleep(0.3)
        assert thread.is_alive()
        holder.execute("ROLLBACK")
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert (results[0].error, results[0].status) == (None, "INSERT 0 1")
    finally:
        holder.close()
        if thread.is_alive():
            thread.join(timeout=5)
        waiter.close()


def waits_for_a_lock(conn: psycopg2.extensions.connection, pid: int) -> bool:
    """Does backend `pid` wait for a heavyweight lock within 5 s?"""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with conn.cursor() as cur:
            cur.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid])
            if cur.fetchone() == (True,):
                return True
        time.sleep(0.02)
    return False


def test_a_terminated_backend_is_reported_lost_even_while_its_step_waits(
    scenario: Scenario, types_dsn: str, reference: psycopg2.extensions.connection
) -> None:
    holder, waiter = AsyncpgSession(types_dsn), AsyncpgSession(types_dsn)
    results: list = []
    thread = threading.Thread(target=lambda: results.append(waiter.execute("SELECT pg_advisory_lock(4242)")))
    try:
        holder.execute("SELECT pg_advisory_lock(4242)")
        thread.start()
        assert waits_for_a_lock(reference, waiter.pid)
        with reference.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", [waiter.pid])
        thread.join(timeout=5)
        assert not thread.is_alive()
        (result,) = results
        # asyncpg's own error, the server's FATAL message folded into its text, no SQLSTATE
        assert result.error is not None and result.error.sqlstate is None
        assert result.error.exception == "asyncpg.exceptions.ConnectionDoesNotExistError"
        assert result.error.message.startswith("connection was closed in the middle of operation")
        assert (waiter.broken, waiter.closed, result.transaction_status) == (True, False, "closed")
        after = waiter.execute("SELECT 1")
        assert after.error is not None and after.transaction_status == "closed"
        with pytest.raises(ConnectionLost, match="lost session app's connection to PostgreSQL"):
            waiter.configure(scenario, scenario.session("app"), Level.READ_COMMITTED, TYPES_SCHEMA)
    finally:
        holder.close()
        if thread.is_alive():
            thread.join(timeout=5)
        waiter.close()


def test_configure_and_finish_leave_the_session_holding_nothing(
    scenario: Scenario, session: AsyncpgSession, reference: psycopg2.extensions.connection
) -> None:
    spec = scenario.session("busy")
    session.execute("SET work_mem = '7MB'; BEGIN; SELECT 1")  # left open by an earlier use
    session.configure(scenario, spec, Level.SERIALIZABLE, TYPES_SCHEMA)
    with reference.cursor() as cur:
        cur.execute("SELECT application_name, state FROM pg_stat_activity WHERE pid = %s", [session.pid])
        assert cur.fetchone() == ("txnlab:busy", "idle")
    assert session.execute("SHOW search_path").rows == ((TYPES_SCHEMA,),)
    assert session.execute("SHOW work_mem").rows != (("7MB",),)
    assert session.execute("SELECT count(*) FROM scratch").transaction_status == "in transaction"
    session.finish(scenario, spec)
    assert session.transaction_status() == "idle"
    leftovers = session.execute(
        "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), "
        "(SELECT count(*) FROM pg_listening_channels()), to_regclass('pg_temp.scratch')"
    )
    assert leftovers.rows == (("0", "0", None),)


def test_a_python_step_may_be_a_coroutine_function_or_return_a_coroutine(session: AsyncpgSession) -> None:
    async def fetch(conn):  # type: ignore[no-untyped-def]
        return await conn.fetchrow("SELECT 1 AS a, 'x' AS b")

    assert session.call(fetch).rows == (({"a": 1, "b": "x"},),)
    assert session.call(lambda conn: conn.fetch("SELECT 1 AS a")).rows == (([{"a": 1}],),)
    assert session.call(lambda conn: conn.fetchval("SELECT 2")).rows == ((2,),)
    assert session.call(lambda conn: conn.get_server_pid()).rows == ((session.pid,),)
    failed = session.call(lambda conn: conn.fetchval("SELECT 1/0"))
    assert (failed.error.sqlstate, failed.rows) == ("22012", None)


def test_asyncpgs_cached_statements_survive_the_reset_between_runs(
    scenario: Scenario, session: AsyncpgSession
) -> None:
    spec = scenario.session("app")
    for _ in range(2):
        session.configure(scenario, spec, Level.READ_COMMITTED, TYPES_SCHEMA)
        assert session.call(lambda conn: conn.fetchval("SELECT 41 + 1")).rows == ((42,),)
        session.finish(scenario, spec)


def test_failing_setup_or_teardown_sql_points_at_its_line(scenario: Scenario, session: AsyncpgSession) -> None:
    failure = r'asyncpg.yaml:17: session bad_setup setup SQL failed: 42P01 relation "no_such_table" does not exist$'
    with pytest.raises(ScenarioError, match=failure):
        session.configure(scenario, scenario.session("bad_setup"), Level.READ_COMMITTED, TYPES_SCHEMA)
    spec = scenario.session("bad_teardown")
    session.configure(scenario, spec, Level.READ_COMMITTED, TYPES_SCHEMA)
    with pytest.raises(ScenarioError, match=r"session bad_teardown teardown SQL failed: 42P01 "):
        session.finish(scenario, spec)


def test_a_session_connects_through_the_wire_tap_and_the_application_can_close_it(
    types_dsn: str, tap: WireTap
) -> None:
    session = AsyncpgSession(tap.dsn(types_dsn))
    try:
        first = session.pid
        session.call(lambda conn: conn.close())
        assert (session.closed, session.broken, session.transaction_status()) == (True, False, "closed")
        session.reopen()
        assert session.pid != first and session.execute("SELECT 1").rows == (("1",),)
    finally:
        session.close()


def test_libpq_connection_strings_become_asyncpg_arguments() -> None:
    arguments = connect_arguments(
        "host=/tmp/sock port=5433 user=u password='p w' dbname=d application_name=a sslmode=disable "
        "gssencmode=disable options='-c search_path=s --lock-timeout=5s'"
    )
    assert arguments == {
        "timeout": 2.5, "host": "/tmp/sock", "port": 5433, "user": "u", "password": "p w", "database": "d",
        "ssl": False, "server_settings": {"application_name": "a", "search_path": "s", "lock_timeout": "5s"},
    }
    assert connect_arguments("host=h connect_timeout=7")["timeout"] == 7.0
    with pytest.raises(ValueError, match="no counterpart for the connection parameter 'target_session_attrs'"):
        connect_arguments("host=h target_session_attrs=any")


def test_an_idle_session_the_server_terminated_is_broken_not_closed(
    session: AsyncpgSession, reference: psycopg2.extensions.connection
) -> None:
    with reference.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", [session.pid])
    result = session.execute("SELECT 1")
    assert result.error is not None and result.transaction_status == "closed"
    assert (session.broken, session.closed) == (True, False)


def test_a_python_step_records_asyncpgs_own_view_of_the_transaction(session: AsyncpgSession) -> None:
    async def open_transaction(conn: asyncpg.Connection) -> None:
        await conn.execute("BEGIN")

    assert session.call(lambda conn: None).driver_status == "is_in_transaction() = False"
    assert session.call(open_transaction).driver_status == "is_in_transaction() = True"
    session.call(lambda conn: conn.execute("ROLLBACK"))
