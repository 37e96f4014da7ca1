"""A wire tap: a proxy between the driver and PostgreSQL that records what the driver
really sent (psycopg2's implicit BEGIN, SQLAlchemy's SAVEPOINT and its ROLLBACK on return
to the pool), rather than what we believe it sent.

It forwards to the server as the txnlab process itself, so it must admit nobody else: it
listens on a unix socket in a fresh directory only this OS user can enter (mode 0700,
removed on close), and also checks each client's uid (SO_PEERCRED) before forwarding.

It parses the frontend/backend protocol just enough: the client's Query ('Q') and
Parse ('P') messages, Bind ('B') of a statement parsed before and already executed (a
driver's cached prepared statement run again sends no Parse: asyncpg, SQLAlchemy on
asyncpg), and the server's BackendKeyData ('K'), which names the backend process, so
messages can be attributed to a session by its pid.

Nothing is left behind, even by a process killed with SIGKILL: each tap holds an
exclusive flock(2) on its own directory, taken before it binds its socket, for as long
as it lives; the kernel releases it however the process ends. Every new tap first
removes this OS user's tap directories whose lock it can take (`remove_abandoned`),
as the scratch-database janitor does with the server's advisory locks: a lock, unlike
a pid, proves its owner gone across PID namespaces and after pid reuse.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import socket
import struct
import tempfile
import threading
from collections import defaultdict

import psycopg2.extensions

CHUNK = 65536
SOCKET_PORT = 5432  # libpq finds the socket as <host dir>/.s.PGSQL.<port>
SOCKET_NAME = f".s.PGSQL.{SOCKET_PORT}"
DIRECTORY_PREFIX = "txnlab-tap-"


class WireTap:
    """Listen on a private unix socket; forward each connection to the real server; record queries by pid."""

    def __init__(self, server_dsn: str) -> None:
        params = psycopg2.extensions.parse_dsn(server_dsn)
        host = params.get("host") or "/var/run/postgresql"
        port = int(params.get("port") or 5432)
        self._upstream: tuple[int, object]
        if host.startswith("/"):
            self._upstream = (socket.AF_UNIX, os.path.join(host, f".s.PGSQL.{port}"))
        else:
            self._upstream = (socket.AF_INET, (host, port))
        remove_abandoned()
        self.socket_dir = tempfile.mkdtemp(prefix=DIRECTORY_PREFIX)  # mode 0700: only this user enters
        self._owner_lock = _lock(self.socket_dir, wait=True)  # held until close(), or the kernel ends it at our death
        self.port = SOCKET_PORT
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if self._owner_lock is None:
                raise OSError(errno.ENOENT, "the new wire tap directory could not be opened", self.socket_dir)
            self._listener.bind(os.path.join(self.socket_dir, SOCKET_NAME))
            self._listener.listen()
        except OSError:
            self.close()
            raise
        self._lock = threading.Lock()
        self._sent: dict[int, list[str]] = defaultdict(list)
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name="txnlab-wiretap", daemon=True)
        self._acceptor.start()

    def dsn(self, server_dsn: str) -> str:
        """`server_dsn` rerouted through the tap (TLS off, so the messages can be read)."""
        return psycopg2.extensions.make_dsn(
            server_dsn, host=self.socket_dir, port=self.port, sslmode="disable", gssencmode="disable"
        )

    def take(self, pid: int) -> tuple[str, ...]:
        """What the client of backend `pid` sent since the last call."""
        with self._lock:
            return tuple(self._sent.pop(pid, ()))

    def take_except(self, pids: set[int]) -> tuple[str, ...]:
        """What all other clients sent since the last call (pools, SQLAlchemy engines)."""
        with self._lock:
            others = [pid for pid in self._sent if pid not in pids]
            return tuple(message for pid in others for message in self._sent.pop(pid))

    def close(self) -> None:
        """Stop listening, end the accepting thread, and remove the socket and its directory.

        close() alone would not wake the thread blocked in accept() (Linux keeps the socket
        open until that call returns): shutdown() first makes accept() fail at once."""
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # never listened (bind failed), or already shut
        self._listener.close()
        acceptor = getattr(self, "_acceptor", None)
        if acceptor is not None and acceptor is not threading.current_thread():
            acceptor.join(timeout=1.0)
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        if self._owner_lock is not None:
            os.close(self._owner_lock)
            self._owner_lock = None

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not _same_user(client):
                client.close()
                continue
            family, address = self._upstream
            server = socket.socket(family, socket.SOCK_STREAM)
            try:
                server.connect(address)
            except OSError:
                client.close()
                continue
            pid_box: list[int] = []
            threading.Thread(target=self._pump_client, args=(client, server, pid_box), daemon=True).start()
            threading.Thread(target=self._pump_server, args=(server, client, pid_box), daemon=True).start()

    def _pump_client(self, client: socket.socket, server: socket.socket, pid_box: list[int]) -> None:
        """Forward client -> server, recording each Query and Parse, and each Bind that runs a
        prepared statement again."""
        buffer = b""
        started = False
        prepared = _Prepared()
        try:
            while data := client.recv(CHUNK):
                buffer += data
                while True:
                    if not started:  # startup, SSL or cancel request: length, then payload
                        if len(buffer) < 4:
                            break
                        (length,) = struct.unpack("!I", buffer[:4])
                        if len(buffer) < length:
                            break
                        buffer = buffer[length:]
                        started = True
                        continue
                    if len(buffer) < 5:
                        break
                    kind = buffer[:1]
                    (length,) = struct.unpack("!I", buffer[1:5])
                    if len(buffer) < 1 + length:
                        break
                    body, buffer = buffer[5 : 1 + length], buffer[1 + length :]
                    self._record(kind, body, pid_box, prepared)
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close(server)

    def _record(self, kind: bytes, body: bytes, pid_box: list[int], prepared: _Prepared) -> None:
        if kind == b"Q":
            text = body.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind == b"P":
            name, query = body.split(b"\0", 2)[:2]
            text = query.decode("utf-8", "replace")
            prepared.parsed(name, text)
        elif kind == b"B":
            statement = body.split(b"\0", 2)[1]
            again = prepared.bound(statement)
            if again is None:
                return
            text = again
        else:
            return
        if pid_box:
            with self._lock:
                self._sent[pid_box[0]].append(text)

    def _pump_server(self, server: socket.socket, client: socket.socket, pid_box: list[int]) -> None:
        """Forward server -> client, reading the backend's pid from BackendKeyData."""
        buffer = b""
        try:
            while data := server.recv(CHUNK):
                if not pid_box:
                    buffer += data
                    pid = _backend_pid(buffer)
                    if pid is not None:
                        pid_box.append(pid)
                        buffer = b""
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)


class _Prepared:
    """One connection's prepared statements: each Parse is recorded, and so is each later Bind
    of a statement whose Parse was already followed by its first Bind (a re-execution)."""

    def __init__(self) -> None:
        self._text: dict[bytes, str] = {}
        self._unbound: set[bytes] = set()

    def parsed(self, name: bytes, text: str) -> None:
        self._text[name] = text
        self._unbound.add(name)

    def bound(self, name: bytes) -> str | None:
        """The statement's text if this Bind executes it again, else None (its Parse was recorded)."""
        if name in self._unbound or name not in self._text:
            self._unbound.discard(name)
            return None
        return self._text[name]


def _backend_pid(buffer: bytes) -> int | None:
    """The pid in the first BackendKeyData message of the server's startup reply, if complete."""
    offset = 0
    while len(buffer) >= offset + 5:
        kind = buffer[offset : offset + 1]
        (length,) = struct.unpack("!I", buffer[offset + 1 : offset + 5])
        if kind == b"K" and len(buffer) >= offset + 9:
            return int(struct.unpack("!I", buffer[offset + 5 : offset + 9])[0])
        offset += 1 + length
    return None


def _same_user(client: socket.socket) -> bool:
    """Whether the peer process runs as this process's OS user (Linux SO_PEERCRED; elsewhere the
    directory's mode is the only guard)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    credentials = client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid == os.geteuid()


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def remove_abandoned(parent: str | None = None) -> list[str]:
    """Remove the tap directories in `parent` (the temporary directory) that this OS user's
    killed txnlab processes left behind; return their paths.

    A directory is removed only if all of these hold: its name starts with txnlab-tap-,
    it is a real directory (not a link) owned by this user, it holds a tap socket (so
    its owner had locked it: a tap locks before it binds), its lock is free (its owner
    is gone), and its socket refuses connections (no listener: also true of a directory
    made before taps locked theirs). A live tap's directory, another user's, or one
    being made is left alone."""
    parent = parent or tempfile.gettempdir()
    removed = []
    try:
        entries = [entry for entry in os.scandir(parent) if entry.name.startswith(DIRECTORY_PREFIX)]
    except OSError:
        return removed
    for entry in entries:
        try:
            status = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid():
            continue
        lock = _lock(entry.path, wait=False)
        if lock is None:
            continue  # its owner is alive (or another janitor is removing it)
        try:
            if _listener_gone(os.path.join(entry.path, SOCKET_NAME)):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
        finally:
            os.close(lock)
    return removed


def _lock(directory: str, *, wait: bool) -> int | None:
    """An open descriptor of `directory` holding its exclusive flock, or None if the directory
    is gone or (unless `wait`) another process holds the lock. Not inherited by child processes;
    a janitor holds a new tap's lock only for a moment (it finds no socket there)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


def _listener_gone(path: str) -> bool:
    """Whether `path` is a unix socket that nobody listens on any more (connect is refused)."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return False
    except OSError:
        return False  # no socket yet: its owner may be between mkdtemp and bind
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        probe.close()
    return False
