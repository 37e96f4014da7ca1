"""Fixtures: the same server selection as the CLI (TXNLAB_DSN, DATABASE_URL, else the
embedded server), one scratch database for the whole test session made by
pytest-postgresql's janitor, and one Lab in it: a database costs about 175 ms to
create, a run's fresh schema about 3 ms.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from txnlab.cli import main
from txnlab.runner.lab import Lab, open_lab
from txnlab.scenario import Catalogue
from txnlab.server.connect import with_params
from txnlab.server.selection import choose_server, resolve_dsn

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Two suites may run at once on one machine and one server (two clones, CI beside a
# developer; in containers their pids may even be equal): what outlives a test's own
# scratch database (an OS user, a role: roles belong to the whole server) gets this tag.
PROCESS_TAG = f"{os.getpid()}_{secrets.token_hex(3)}"


def process_unique(name: str) -> str:
    """`name` made unique to this test process (`<name>_<pid>_<6 hex>`, 14 characters more), for
    machine- or server-wide objects, so that another suite never meets, nor removes, ours."""
    return f"{name}_{PROCESS_TAG}"

# A shell starts a background job (`pytest &`, a CI step run that way) with SIGINT and
# SIGQUIT ignored, and every txnlab a test starts would inherit that: the tests that
# press Ctrl-C would wait in vain. The suite's children get the default dispositions
# (tests of txnlab keeping an ignored signal ignored set SIG_IGN themselves).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def server_dsn() -> str:
    """A running server: the configured one, or the embedded one (started if needed)."""
    return resolve_dsn(choose_server())


@pytest.fixture(scope="session")
def scratch_dsn(server_dsn: str) -> Iterator[str]:
    params = psycopg2.extensions.parse_dsn(server_dsn)
    name = f"txnlab_test_{os.getpid()}"
    janitor = DatabaseJanitor(
        user=params.get("user") or os.environ.get("PGUSER") or "postgres",
        host=params.get("host") or "localhost",
        port=params.get("port") or 5432,
        password=params.get("password"),
        dbname=name,
        maintenance_dbname=params.get("dbname") or "postgres",
    )
    with janitor:
        yield with_params(server_dsn, dbname=name)


@pytest.fixture(scope="session")
def lab(scratch_dsn: str) -> Iterator[Lab]:
    lab = Lab(scratch_dsn, step_timeout=5.0)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return Catalogue()


@pytest.fixture
def admin(server_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection to the server's maintenance database, to inspect what runs left behind."""
    conn = psycopg2.connect(server_dsn)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def role(admin, server_dsn: str):  # type: ignore[no-untyped-def]
    """Make a login role with the given attributes, named `name` made unique to this process
    (the DSN's user); returns the DSN to use it. Dropped afterwards."""
    made: list[str] = []

    def make(name: str, attributes: str) -> str:
        name = process_unique(name)
        with admin.cursor() as cur:
            try:
                cur.execute(f"DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN {attributes}")
            except psycopg2.Error:
                pytest.skip("the test role may not create roles")
        made.append(name)
        dsn = with_params(server_dsn, user=name)
        try:
            psycopg2.connect(dsn).close()
        except psycopg2.OperationalError:
            pytest.skip("the server does not let the new role log in without a password")
        return dsn

    yield make
    with admin.cursor() as cur:
        for name in made:
            cur.execute(f"DROP ROLE {name}")


def leftovers(conn: psycopg2.extensions.connection, pid: int) -> tuple[list[str], list[str]]:
    """Scratch databases and sessions that the txnlab process `pid` left on the server."""
    pattern = f"txnlab\\_scratch\\_{pid}\\_%"
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [pattern])
        databases = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT application_name FROM pg_stat_activity WHERE datname LIKE %s", [pattern])
        sessions = [r[0] for r in cur.fetchall()]
    return databases, sessions


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], server_dsn: str):  # type: ignore[no-untyped-def]
    """Run `txnlab ARGS` in this process against the test server; returns (code, stdout, stderr)."""
    monkeypatch.setenv("TXNLAB_DSN", server_dsn)

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        return int(exited.value.code or 0), out, err

    return run


@pytest.fixture
def spec_lab(server_dsn: str) -> Iterator[Lab]:
    """A lab of its own for each test of .spec runs: specs create their objects in its
    database's public schema, as isolationtester's do, so no two tests may share one."""
    with open_lab(server_dsn, step_timeout=10) as lab:
        yield lab


@pytest.fixture
def plain_output(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """No colour, and the width the test module names (TEXT_COLUMNS, else 140 columns): the
    text such tests read is the piped, uncoloured one. Use: `pytestmark = pytest.mark.usefixtures("plain_output")`."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", str(getattr(request.module, "TEXT_COLUMNS", 140)))
