"""Chaos trials for DSNs and scratch databases (issue 8, items 2, 4, 9 and 10), bounded:
hostile generated DSNs through every way in and every failure, concurrent txnlab processes
sharing a server, and Ctrl-C at random moments while a scratch database is being made."""

from __future__ import annotations

import os
import random
import signal
import socket
import socketserver
import string
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import leftovers
from dsn_forms import FORMS, RUN, SOURCES, WORDS, passwords, run_txnlab
from txnlab.server.scratch import drop_abandoned

UNREACHABLE = {"host": "127.0.0.1", "port": "1", "user": "u"}
NOISE = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)) | st.sampled_from(list("@:/?&=%[]' \\\"")),
    max_size=12,
)


class EchoingServer(socketserver.ThreadingTCPServer):
    """A hostile server: asks for the password in clear text (protocol 3.0, AuthenticationCleartextPassword)
    and rejects it with an error that quotes it, as libpq then shows the user."""

    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that leaves early (no password to send) is no error of the trial's."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            sock.settimeout(5)
            while True:  # SSLRequest and GSSENCRequest: "N", then the startup message
                length, code = struct.unpack("!ii", sock.recv(8, socket.MSG_WAITALL))
                sock.recv(length - 8, socket.MSG_WAITALL)
                if code not in (80877103, 80877104):
                    break
                sock.sendall(b"N")
            sock.sendall(b"R" + struct.pack("!ii", 8, 3))
            kind, length = struct.unpack("!ci", sock.recv(5, socket.MSG_WAITALL))
            password = sock.recv(length - 4, socket.MSG_WAITALL).rstrip(b"\0")
            fields = b"SFATAL\0C28P01\0M" + b"password " + password + b" is wrong\0\0"
            sock.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)


@pytest.fixture(scope="module")
def servers(server_dsn: str) -> Iterator[dict[str, dict[str, str]]]:
    """Where a generated DSN points: nowhere (refused), the test server with a role it refuses,
    or a hostile server that quotes the password it was sent."""
    params = psycopg2.extensions.parse_dsn(server_dsn)
    refusing = {"host": params.get("host") or "localhost", "port": params.get("port") or "5432", "user": "txnlab_nobody"}
    with EchoingServer(("127.0.0.1", 0), EchoingServer.Handler) as echoing:
        threading.Thread(target=echoing.serve_forever, daemon=True).start()
        quoting = {"host": "127.0.0.1", "port": str(echoing.server_address[1]), "user": "u"}
        yield {"unreachable": UNREACHABLE, "refusing": refusing, "quoting": quoting}
        echoing.shutdown()


def test_the_hostile_server_does_quote_the_password(servers: dict[str, dict[str, str]]) -> None:
    """The trial below means something only if libpq passes the server's words on."""
    with pytest.raises(psycopg2.OperationalError, match="password pwPlain is wrong"):
        psycopg2.connect(FORMS["uri, password encoded"](servers["quoting"], "pwPlain"), sslmode="disable")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    password=passwords(),
    form=st.sampled_from(sorted(FORMS)),
    source=st.sampled_from(SOURCES),
    server=st.sampled_from(["unreachable", "refusing", "quoting"]),
    pgpassword=WORDS,
)
def test_hostile_generated_dsns_never_show_a_piece_of_any_password(
    servers: dict[str, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
    password: tuple[str, list[str]],
    form: str,
    source: str,
    server: str,
    pgpassword: str,
) -> None:
    text, words = password
    passfile = tmp_path_factory.mktemp("pgpass") / "pgpass"
    passfile.write_text(f"*:*:*:*:{pgpassword}x\n")
    passfile.chmod(0o600)
    code, output = run_txnlab(
        RUN, source, FORMS[form](servers[server], text), {"PGPASSWORD": pgpassword, "PGPASSFILE": str(passfile)}
    )
    assert code in (2, 3) and output.startswith("txnlab: error: ") and output.count("\n") == 1, output
    assert not [word for word in [*words, pgpassword] if word in output], output


@settings(max_examples=150, deadline=None)
@given(before=NOISE, after=NOISE, password=WORDS, uri=st.booleans())
def test_a_password_amid_arbitrary_text_is_never_shown(before: str, after: str, password: str, uri: bool) -> None:
    """Whatever surrounds it, a password written where libpq looks for one stays hidden."""
    dsn = (
        f"postgresql://{before}:{password}@127.0.0.1:1/{after}" if uri
        else f"host=127.0.0.1 port=1 {before} password={password} {after}"
    )
    code, output = run_txnlab(RUN, "--dsn", dsn)
    assert code in (2, 3) and output.count("\n") == 1 and "Traceback" not in output, output
    assert password not in output, output


def spawn(args: list[str], server_dsn: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "txnlab", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_concurrent_txnlab_processes_all_succeed_and_leave_nothing(server_dsn: str, admin) -> None:  # type: ignore[no-untyped-def]
    """Four runs start together on one server; each one's janitor meets the others' live databases."""
    processes = [spawn(["run", "atm-lost-update", "dirty-read", "--level", "all"], server_dsn) for _ in range(4)]
    results = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, [err for _, err in results]
    for process in processes:
        assert leftovers(admin, process.pid) == ([], [])


def test_ctrl_c_at_random_moments_while_starting_leaves_nothing_the_next_run_cannot_drop(
    server_dsn: str, admin  # type: ignore[no-untyped-def]
) -> None:
    """SIGINT somewhere in the first second and a half: while importing, connecting, taking
    the lock, creating the database, or running. Whatever happened, after one janitor pass
    nothing of that process remains."""
    trials = random.Random(8)
    outcomes = []
    for _ in range(8):
        process = spawn(["run", "atm-lost-update", "--level", "rc"], server_dsn)
        time.sleep(trials.uniform(0.1, 1.5))
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        outcomes.append(process.returncode)
        with admin.cursor() as cur:
            drop_abandoned(cur)
        assert leftovers(admin, process.pid) == ([], []), err
        if process.returncode == 130:
            assert "nothing was left behind" in err
    assert set(outcomes) <= {0, 130, -signal.SIGINT}, outcomes


@pytest.mark.parametrize("supplier", ["PGPASSWORD", "PGPASSFILE"])
def test_a_password_libpq_takes_from_the_environment_or_pgpass_is_never_printed(
    servers: dict[str, dict[str, str]], tmp_path, supplier: str  # type: ignore[no-untyped-def]
) -> None:
    """Even when the server quotes it back: the DSN itself holds no password."""
    word = "pw" + "".join(random.choices(string.ascii_letters, k=8))
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:*:{word}\n")
    passfile.chmod(0o600)
    env = {"PGPASSWORD": word} if supplier == "PGPASSWORD" else {"PGPASSFILE": str(passfile)}
    for name, server in servers.items():
        dsn = f"host={server['host']} port={server['port']} user={server['user']}"
        code, output = run_txnlab(RUN, "TXNLAB_DSN", dsn, env)
        assert code == 3 and word not in output, output
        if name == "quoting":
            assert "password *** is wrong" in output, output
