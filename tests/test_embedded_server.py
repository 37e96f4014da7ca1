"""The embedded server and the wire tap: one server per installation, reused safely; access only
for the installing OS user; a private tap; a server that survives what scenario SQL does to it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from conftest import process_unique
from txnlab.runner.wiretap import WireTap
from txnlab.server.access import allowed_os_users, hba_conf, ident_conf
from txnlab.server.connect import with_params
from txnlab.server.embedded import (
    EmbeddedServer,
    PostmasterState,
    ServerBusy,
    default_data_dir,
    installed_postgres,
    legacy_data_dir_name,
    maintenance_connection,
)
from txnlab.server.footprint import Footprint, ServerChange
from txnlab.server.selection import choose_server

# Roles and databases belong to the whole server, which another suite may share.
FP_NEW, FP_OLD, FP_DB = (process_unique(name) for name in ("txnlab_fp_new", "txnlab_fp_old", "txnlab_fp_db"))


def embedded_only() -> None:
    if choose_server().origin != "embedded":
        pytest.skip("needs the embedded server (TXNLAB_DSN or DATABASE_URL names another one)")


def is_superuser(conn: psycopg2.extensions.connection) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        return bool(cur.fetchone()[0])


def test_each_installation_has_its_own_data_directory_keyed_by_its_postgres_binary() -> None:
    prefix = legacy_data_dir_name() + "-"
    name = default_data_dir().name
    assert name.startswith(prefix) and len(name) == len(prefix) + 10
    assert installed_postgres().exists()


def test_a_running_server_counts_as_this_installation_only_when_it_runs_this_binary_file(server_dsn: str) -> None:
    embedded_only()
    server = EmbeddedServer()
    state = server.state()
    assert state is not None and server._runs_this_installation(state)
    python = PostmasterState(pid=os.getpid(), port=state.port, socket_dir=state.socket_dir, status="ready")
    assert not server._runs_this_installation(python)  # this process runs python, not that postgres


def test_the_tap_listens_on_a_unix_socket_in_a_directory_only_this_user_can_enter(server_dsn: str) -> None:
    tap = WireTap(server_dsn)
    directory = Path(tap.socket_dir)
    try:
        info = directory.stat()
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
        assert psycopg2.extensions.parse_dsn(tap.dsn(server_dsn))["host"] == str(directory)
        conn = psycopg2.connect(tap.dsn(server_dsn))
        with conn.cursor() as cur:
            cur.execute("SELECT 42")
            assert cur.fetchone() == (42,)
        pid = conn.get_backend_pid()
        conn.close()
        assert "SELECT 42" in tap.take(pid)
    finally:
        tap.close()
    assert not directory.exists()


def test_closing_the_tap_ends_its_accepting_thread(server_dsn: str) -> None:
    """Before: the thread stayed blocked in accept() for the rest of the process, one per tap."""
    def accepting() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "txnlab-wiretap"}

    before = accepting()
    tap = WireTap(server_dsn)
    assert len(accepting() - before) == 1
    tap.close()
    assert accepting() - before == set()


def test_the_embedded_server_admits_only_peer_connections_of_allowed_os_users(server_dsn: str, admin) -> None:  # type: ignore[no-untyped-def]
    embedded_only()
    with admin.cursor() as cur:
        cur.execute("SELECT type, auth_method, options FROM pg_hba_file_rules ORDER BY rule_number")
        assert cur.fetchall() == [("local", "peer", ["map=txnlab"]), ("host", "reject", None)]
        cur.execute("SELECT sys_name, pg_username FROM pg_ident_file_mappings WHERE map_name = 'txnlab'")
        assert sorted(cur.fetchall()) == sorted((user, "all") for user in allowed_os_users())


def test_an_existing_data_directory_that_trusts_everyone_is_rewritten_and_reloaded(server_dsn: str, admin) -> None:  # type: ignore[no-untyped-def]
    embedded_only()
    server = EmbeddedServer()
    hba = server.data_dir / "pg_hba.conf"
    with hba.open("w") as file:  # as initdb --auth=trust wrote it for earlier txnlab versions
        file.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    server.ensure_running()
    assert hba.read_text() == hba_conf()
    assert (server.data_dir / "pg_ident.conf").read_text() == ident_conf(allowed_os_users())
    with admin.cursor() as cur:
        cur.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
        assert sorted(r[0] for r in cur.fetchall()) == ["peer", "reject"]


def test_a_dropped_maintenance_database_is_recreated_on_the_next_start(server_dsn: str) -> None:
    embedded_only()
    conn = psycopg2.connect(with_params(server_dsn, dbname="template1"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE postgres WITH (FORCE)")
        EmbeddedServer().ensure_running()
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_database WHERE datname = 'postgres'")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()


def test_txnlabs_recreating_the_maintenance_database_at_once_all_connect(server_dsn: str) -> None:
    """Two sessions creating the same database at once: the loser gets 23505 on
    pg_database's unique index, not 42P04; it must connect like the others."""
    embedded_only()
    conn = psycopg2.connect(with_params(server_dsn, dbname="template1"))
    conn.autocommit = True
    try:
        for _ in range(5):
            with conn.cursor() as cur:
                cur.execute("DROP DATABASE IF EXISTS postgres WITH (FORCE)")
            start = threading.Barrier(6)
            failures: list[BaseException] = []

            def connect_once() -> None:
                start.wait()
                try:
                    maintenance_connection(server_dsn).close()
                except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
                    failures.append(exc)

            threads = [threading.Thread(target=connect_once) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert failures == []
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_database WHERE datname = 'postgres'")
            if cur.fetchone() == (0,):
                cur.execute("CREATE DATABASE postgres TEMPLATE template0")
        conn.close()


def test_stop_refuses_while_a_txnlab_run_is_connected(server_dsn: str) -> None:
    embedded_only()
    run = psycopg2.connect(server_dsn, application_name="txnlab:alice")
    try:
        with pytest.raises(ServerBusy, match="runs in progress.*--force"):
            EmbeddedServer().stop()
        assert EmbeddedServer().state() is not None
        assert run.get_backend_pid() in [r.pid for r in EmbeddedServer().runs_in_progress()]  # the suite's lab may be there too
    finally:
        run.close()


@pytest.fixture
def footprint_db(scratch_dsn: str, admin) -> Iterator[tuple[str, psycopg2.extensions.connection]]:  # type: ignore[no-untyped-def]
    """A connection that plays the scenario, and cleanup of the names the tests use."""
    conn = psycopg2.connect(scratch_dsn)
    conn.autocommit = True
    yield scratch_dsn, conn
    conn.close()
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {FP_DB}")
        cur.execute(f"DROP ROLE IF EXISTS {FP_NEW}")
        cur.execute(f"DROP ROLE IF EXISTS {FP_OLD}")


def test_roles_databases_and_settings_a_run_creates_are_reported_and_removed(footprint_db, admin) -> None:  # type: ignore[no-untyped-def]
    dsn, conn = footprint_db
    footprint = Footprint(dsn, "postgres", undo=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {FP_NEW}")
        cur.execute(f"CREATE TABLE granted_to_new (id int); GRANT SELECT ON granted_to_new TO {FP_NEW}")
        cur.execute(f"CREATE DATABASE {FP_DB}")
        cur.execute(f"ALTER DATABASE {FP_DB} SET work_mem = '5MB'")
    changes = footprint.settle()
    assert {(c.kind, c.key, c.action, c.undone) for c in changes} == {
        ("database", (FP_DB,), "created", True),
        ("role", (FP_NEW,), "created", True),
    }  # the database's work_mem setting went with it
    with admin.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM pg_roles WHERE rolname = '{FP_NEW}'")
        assert cur.fetchone() == (0,)
        cur.execute(f"SELECT count(*) FROM pg_database WHERE datname = '{FP_DB}'")
        assert cur.fetchone() == (0,)


def test_what_existed_before_and_was_changed_is_reported_not_reverted(footprint_db, admin) -> None:  # type: ignore[no-untyped-def]
    dsn, conn = footprint_db
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {FP_OLD}")
    footprint = Footprint(dsn, "postgres", undo=True)
    with conn.cursor() as cur:
        cur.execute(f"ALTER ROLE {FP_OLD} CREATEDB")
        cur.execute(f"ALTER ROLE {FP_OLD} SET lock_timeout = '3s'")
    changes = footprint.settle()
    assert ServerChange("role", (FP_OLD,), "changed", "CONNECTION LIMIT -1",
                        "CREATEDB CONNECTION LIMIT -1") in changes
    assert ServerChange("role/database setting", (FP_OLD, "", "lock_timeout"), "created",
                        after="3s", undone=True) in changes
    with admin.cursor() as cur:
        cur.execute(f"SELECT rolcreatedb, rolconfig FROM pg_roles WHERE rolname = '{FP_OLD}'")
        assert cur.fetchone() == (True, None)


def test_alter_system_by_a_run_is_reset_and_reloaded(footprint_db, admin) -> None:  # type: ignore[no-untyped-def]
    dsn, conn = footprint_db
    if not is_superuser(admin):
        pytest.skip("ALTER SYSTEM and pg_file_settings need a superuser")
    footprint = Footprint(dsn, "postgres", undo=True)
    with conn.cursor() as cur:
        cur.execute("ALTER SYSTEM SET work_mem = '7MB'")
    assert footprint.settle() == [ServerChange("setting", ("work_mem",), "created", after="7MB", undone=True)]
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem' AND sourcefile LIKE '%auto.conf'")
        assert cur.fetchone() == (0,)


def test_a_run_that_changes_nothing_outside_its_database_reports_nothing(footprint_db) -> None:  # type: ignore[no-untyped-def]
    dsn, conn = footprint_db
    footprint = Footprint(dsn, "postgres", undo=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE inside (id int); SET work_mem = '9MB'")
    assert footprint.settle() == []


def test_each_server_change_is_one_calm_line_saying_what_txnlab_did() -> None:
    from txnlab.cli.run import describe_change

    lines = [
        describe_change(ServerChange("role", ("alice",), "changed", "LOGIN", "SUPERUSER LOGIN")),
        describe_change(ServerChange("database", ("shop",), "dropped", undone=False)),
        describe_change(ServerChange("setting", ("work_mem",), "created", after="7MB", problem="permission denied")),
    ]
    assert lines == [
        'role "alice" was changed during the run (was LOGIN, now SUPERUSER LOGIN); it existed before, so it is left as it is',
        'database "shop" was dropped during the run; it existed before and cannot be restored',
        "work_mem = 7MB with ALTER SYSTEM was set during the run; txnlab could not undo it: permission denied",
    ]


def test_on_a_server_txnlab_did_not_start_what_appeared_is_reported_and_left(footprint_db, admin) -> None:  # type: ignore[no-untyped-def]
    """The catalogs do not say who created a role: on the user's server, another client's
    new role must survive a txnlab run (a new user's trial found it dropped)."""
    dsn, conn = footprint_db
    footprint = Footprint(dsn, "postgres", undo=False)
    with admin.cursor() as cur:  # another client, not the run
        cur.execute(f"CREATE ROLE {FP_NEW}")
    changes = footprint.settle()
    assert [(c.kind, c.key, c.action, c.undone, c.problem) for c in changes] == [
        ("role", (FP_NEW,), "created", False, "")
    ]
    with admin.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM pg_roles WHERE rolname = '{FP_NEW}'")
        assert cur.fetchone()[0] == 1
    from txnlab.cli.run import describe_change

    assert describe_change(changes[0]) == (
        f'role "{FP_NEW}" was created during the run; txnlab left it, since on a server it did not start '
        "it cannot tell a run's work from another client's"
    )


def test_a_scenarios_view_of_the_server_shows_no_connection_of_txnlabs_own(server_dsn: str) -> None:
    """Capture scenarios list every other connection in the run's database: txnlab's own
    (the footprint's catalog reads among them) must not appear as a third client."""
    done = subprocess.run(
        [sys.executable, "-m", "txnlab", "run", "psycopg2-failed-transaction", "--level", "rc", "--format", "json"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)["runs"]
    labels = {view["label"] for event in run["events"] for view in event.get("server") or ()}
    assert labels == {"this session"}
