"""A scratch database is dropped however the server is busy with it: for a role without
superuser, DROP DATABASE ... WITH (FORCE) is refused while an autovacuum worker is in the
database, and a run must not leave its database behind because autovacuum visited it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
import pytest
from psycopg2 import sql

from txnlab.server.scratch import ScratchDatabase

AUTOVACUUM_WAIT_SECONDS = 30.0
# Each page vacuumed costs more than the limit, so the worker sleeps 100 ms per page
# and stays in the database for seconds: long enough to drop the database under it.
SLOW_AUTOVACUUM = (
    "autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1, "
    "autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0"
)


@pytest.fixture
def frequent_autovacuum(admin: psycopg2.extensions.connection) -> Iterator[None]:
    """autovacuum_naptime = 1 s for the test (it needs a superuser), then the server's own."""
    with admin.cursor() as cur:
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not cur.fetchone()[0]:
            pytest.skip("setting autovacuum_naptime needs a superuser")
        cur.execute("ALTER SYSTEM SET autovacuum_naptime = 1")
        cur.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET autovacuum_naptime")
            cur.execute("SELECT pg_reload_conf()")


def wait_for_autovacuum_worker(admin: psycopg2.extensions.connection, database: str) -> None:
    deadline = time.monotonic() + AUTOVACUUM_WAIT_SECONDS
    with admin.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND backend_type = 'autovacuum worker'", [database])
            if cur.fetchone()[0]:
                return
            time.sleep(0.05)
    pytest.fail(f"no autovacuum worker entered {database} within {AUTOVACUUM_WAIT_SECONDS:.0f} s")


def test_a_non_superuser_drops_its_scratch_database_while_autovacuum_is_in_it(
        admin, role, frequent_autovacuum) -> None:  # type: ignore[no-untyped-def]
    dsn = role("txnlab_autovacuum_victim", "CREATEDB")
    scratch = ScratchDatabase(dsn)
    scratch.create()
    try:
        with psycopg2.connect(scratch.dsn) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE TABLE dead (id int, pad text) WITH ({SLOW_AUTOVACUUM})")
            cur.execute("INSERT INTO dead SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
            cur.execute("DELETE FROM dead")
        conn.close()
        wait_for_autovacuum_worker(admin, scratch.name)

        scratch.drop()

        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [scratch.name])
            assert cur.fetchone()[0] == 0
    finally:  # so that the role can be dropped whatever happened
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch.name)))
