"""The janitor drops a scratch database only when its owner is provably gone: never on a
process ID (other hosts and PID namespaces reuse them), never on a comment (anyone can
copy one), never a database txnlab did not name. And an interrupted creation leaves
nothing that the next run cannot drop."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
from psycopg2 import sql

from conftest import leftovers
from txnlab.server.connect import with_params
from txnlab.server.scratch import ScratchDatabase, drop_abandoned, drop_database, ownership_key

DEAD_PID_COMMENT = f"txnlab scratch database; pid 4999999 on {socket.gethostname()}"  # what txnlab wrote before
SLEEPER = """\
name: sleeper
title: A step that sleeps
summary: Keeps a scratch database in use while another txnlab runs; ended with Ctrl-C.
sessions: {a: {}, b: {}}
steps:
  - {name: nap, session: a, sql: SELECT pg_sleep(60)}
  - {name: other, session: b, sql: SELECT 1}
expect: {all: {}}
"""


def database_exists(conn: psycopg2.extensions.connection, name: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name])
        return bool(cur.fetchone()[0])


def janitor(conn: psycopg2.extensions.connection) -> list[str]:
    with conn.cursor() as cur:
        return drop_abandoned(cur)


@pytest.fixture
def user_databases(admin: psycopg2.extensions.connection) -> Iterator[list[str]]:
    """Names of databases a test creates as a user would; dropped afterwards."""
    names: list[str] = []
    yield names
    with admin.cursor() as cur:
        for name in names:
            drop_database(cur, name)


def create_database(conn: psycopg2.extensions.connection, name: str, comment: str | None = None) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        if comment is not None:
            cur.execute(sql.SQL("COMMENT ON DATABASE {} IS %s").format(sql.Identifier(name)), [comment])


def txnlab(*args: str, server_dsn: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """`txnlab ARGS` in a process group of its own (for Ctrl-C as a terminal sends it), after `prefix`."""
    env = {**os.environ, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1"}
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "txnlab", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def query_count(admin: psycopg2.extensions.connection, like: str) -> int:
    """Sessions running a query LIKE `like`."""
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s", [like])
        return int(cur.fetchone()[0])


def wait_for_query(admin: psycopg2.extensions.connection, like: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if query_count(admin, like):
            return
        time.sleep(0.02)
    pytest.fail(f"no query like {like!r} started")


def test_a_live_scratch_database_is_kept_though_its_comment_names_a_dead_process(
    server_dsn: str, admin: psycopg2.extensions.connection
) -> None:
    """What another PID namespace sees: a process ID that does not exist there."""
    with ScratchDatabase(server_dsn) as dsn:
        name = psycopg2.extensions.parse_dsn(dsn)["dbname"]
        with admin.cursor() as cur:
            cur.execute(sql.SQL("COMMENT ON DATABASE {} IS %s").format(sql.Identifier(name)), [DEAD_PID_COMMENT])
        assert name not in janitor(admin)
        assert database_exists(admin, name)
    assert not database_exists(admin, name)


def test_databases_txnlab_did_not_name_are_never_dropped_whatever_their_comment(
    admin: psycopg2.extensions.connection, user_databases: list[str]
) -> None:
    user_databases += ["txnlab_scratch_4999999_abcdef", "janitor_test_user_data"]  # an old-style name, a user's
    for name in user_databases:
        create_database(admin, name, DEAD_PID_COMMENT)
    janitor(admin)
    assert all(database_exists(admin, name) for name in user_databases)


def test_a_scratch_database_is_kept_while_its_owner_holds_the_lock_and_dropped_once_it_is_free(
    server_dsn: str, admin: psycopg2.extensions.connection, user_databases: list[str]
) -> None:
    owner = psycopg2.connect(server_dsn)
    owner.autocommit = True
    try:
        with owner.cursor() as cur:
            cur.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
            name = f"txnlab_scratch_4999999_{os.urandom(6).hex()}_{cur.fetchone()[0]}"
            user_databases.append(name)
            cur.execute("SELECT pg_advisory_lock(%s::bigint)", [ownership_key(name)])
            create_database(owner, name)
        assert name not in janitor(admin) and database_exists(admin, name)
    finally:
        owner.close()
    deadline = time.monotonic() + 5  # the server frees the lock as soon as the session is gone
    while name not in janitor(admin) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not database_exists(admin, name)


def test_a_scratch_database_whose_lock_database_is_gone_is_dropped(
    server_dsn: str, admin: psycopg2.extensions.connection, user_databases: list[str]
) -> None:
    """No session can hold a lock in a database that no longer exists."""
    with admin.cursor() as cur:
        cur.execute("SELECT max(oid::bigint) + 100000 FROM pg_database")
        name = f"txnlab_scratch_4999999_{os.urandom(6).hex()}_{cur.fetchone()[0]}"
    user_databases.append(name)
    create_database(admin, name)
    assert name in janitor(admin)


def test_a_killed_owners_scratch_database_is_dropped_by_the_next_run(
    server_dsn: str, admin: psycopg2.extensions.connection
) -> None:
    code = (
        "import os, signal; from txnlab.server.scratch import ScratchDatabase; "
        f"s = ScratchDatabase({server_dsn!r}); s.create(); print(s.name, flush=True); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    name = done.stdout.strip()
    assert done.returncode == -signal.SIGKILL and database_exists(admin, name)
    deadline = time.monotonic() + 5
    while name not in janitor(admin) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not database_exists(admin, name)


@pytest.fixture
def template_in_use(server_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """A session on template1: CREATE DATABASE waits (up to 5 s) until it leaves; no privilege needed."""
    visitor = psycopg2.connect(with_params(server_dsn, dbname="template1"))
    try:
        yield visitor
    finally:
        visitor.close()


CREATING = 'CREATE DATABASE "txnlab\\_scratch\\_%'


def test_ctrl_c_during_create_database_exits_130_and_leaves_no_database(
    server_dsn: str, admin: psycopg2.extensions.connection, template_in_use: psycopg2.extensions.connection
) -> None:
    process = txnlab("run", "atm-lost-update", "--level", "rc", server_dsn=server_dsn)
    try:
        wait_for_query(admin, CREATING)
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
    finally:
        template_in_use.close()  # CREATE DATABASE now completes, after the Ctrl-C
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130
    assert err.strip() == "txnlab: interrupted by SIGINT (Ctrl-C); nothing was left behind"
    assert leftovers(admin, process.pid) == ([], [])


def test_a_process_killed_during_create_database_leaves_what_the_next_run_drops(
    server_dsn: str, admin: psycopg2.extensions.connection, template_in_use: psycopg2.extensions.connection
) -> None:
    process = txnlab("run", "atm-lost-update", "--level", "rc", server_dsn=server_dsn)
    try:
        wait_for_query(admin, CREATING)
        process.kill()
    finally:
        template_in_use.close()  # at once: CREATE DATABASE gives up on a busy template after 5 s
    process.communicate(timeout=20)
    deadline = time.monotonic() + 10
    while query_count(admin, CREATING) and time.monotonic() < deadline:
        time.sleep(0.05)  # the orphaned CREATE DATABASE completes, then its session ends
    assert leftovers(admin, process.pid)[0], "the database the killed process was creating exists"
    janitor(admin)
    assert leftovers(admin, process.pid) == ([], [])


def unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=10)
    return done.returncode == 0


def scratch_databases(conn: psycopg2.extensions.connection) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'txnlab\\_scratch\\_%'")
        return {name for (name,) in cur.fetchall()}


def concurrent_runs_leave_each_other_alone(
    tmp_path: Path, server_dsn: str, admin: psycopg2.extensions.connection,
    first_prefix: tuple[str, ...], second_prefix: tuple[str, ...],
) -> None:
    """A (started with `first_prefix`) runs a scenario that sleeps; meanwhile B (started with
    `second_prefix`) runs its own, and its janitor meets A's live database. Then Ctrl-C ends A."""
    path = tmp_path / "sleeper.yaml"
    path.write_text(textwrap.dedent(SLEEPER))
    before = scratch_databases(admin)
    first = txnlab("run", str(path), "--level", "rc", "--step-timeout", "90", server_dsn=server_dsn, prefix=first_prefix)
    wait_for_query(admin, "SELECT pg_sleep(60)")
    (first_database,) = scratch_databases(admin) - before
    second = txnlab("run", "atm-lost-update", "--level", "rc", server_dsn=server_dsn, prefix=second_prefix)
    _, second_err = second.communicate(timeout=30)
    assert second.returncode == 0, second_err
    assert first.poll() is None and database_exists(admin, first_database)
    os.killpg(first.pid, signal.SIGINT)  # as a terminal does: unshare passes it on to its child
    _, first_err = first.communicate(timeout=30)
    assert first.returncode == 130, first_err
    assert not database_exists(admin, first_database)


def test_two_concurrent_txnlab_processes_leave_each_others_scratch_databases_alone(
    tmp_path: Path, server_dsn: str, admin: psycopg2.extensions.connection
) -> None:
    concurrent_runs_leave_each_other_alone(tmp_path, server_dsn, admin, (), ())


UNSHARE = ("unshare", "--pid", "--fork", "--mount-proc")


@pytest.mark.skipif(not unshare_works(), reason="needs `unshare --pid --fork --mount-proc` (root on Linux)")
@pytest.mark.parametrize(
    "first_prefix", [(), UNSHARE], ids=["first on the host, pid unknown there", "both in namespaces, both pid 1"]
)
def test_a_txnlab_in_another_pid_namespace_leaves_a_live_scratch_database_alone(
    tmp_path: Path, server_dsn: str, admin: psycopg2.extensions.connection, first_prefix: tuple[str, ...]
) -> None:
    """Containers sharing a server: there, the first process's PID does not exist, or is another process."""
    concurrent_runs_leave_each_other_alone(tmp_path, server_dsn, admin, first_prefix, UNSHARE)
