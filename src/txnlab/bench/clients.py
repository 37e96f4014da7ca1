"""The load generator: one OS process per client, each repeating the workload's transaction
on its own connection, with retries as pgbench does them.

Why processes: on 2 cores a thread per client with psycopg2 reached ~0.8x pgbench at 2
clients (the GIL), and several connections multiplexed in one process did worse than one
blocking connection per process. Measured again with the compiled transaction as a generator
driven either by PQexec or by a poll() loop over non-blocking connections (PQsendQuery,
PQconsumeInput, PQisBusy, PQgetResult), 2 processes of 4 connections at 8 clients, as pgbench
-j2 runs them: 0.79-0.84x pgbench against 0.84-1.25x for 8 blocking processes (bank-transfer,
READ COMMITTED, 4 interleaved rounds of 4 s); one process of 2 connections lost at 2 clients too. A SQL workload's client runs the script compiled to one
Python function (bench/script.py, Script.python_source prints it) that sends each statement with
libpq's PQexec through psycopg's binding (psycopg.pq): about half the CPU per statement of
psycopg2's cursor.execute. Each client runs the script's statements as written, in autocommit,
one statement per round trip, like pgbench's simple protocol; the isolation level and the
schema arrive through the startup packet's `options` (as pgbench gets them through PGOPTIONS),
so nothing else is sent. A Python workload function gets a psycopg2 connection (not
autocommit); txnlab commits after it returns and rolls back after an exception.

Retries follow pgbench (docs, "Failures and Serialization/Deadlock Retries"): only 40001 and
40P01 are retried, after a ROLLBACK, with the same random draws (pgbench restores its random
state; a Python function's random.Random is restored likewise), up to `retries` more tries
and not after the duration is over (pgbench.c, doRetry); a transaction still failing then
counts as failed. Any other error stops that client, as
pgbench aborts it, and its reason goes back to the parent (bench/run.py ends the bench with it). The measured window runs from all clients connected
(a barrier) to the end of the last transaction; a committed transaction's latency runs from
its first try's start to its commit's end.

Signals: the children ignore SIGINT, SIGHUP and SIGQUIT (a terminal sends them to the whole
process group; the parent decides) and die silently on SIGTERM, which the parent sends them
on any way out (`Load.stop`), and which Linux sends them if the parent dies.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import RawArray
from pathlib import Path
from random import Random
from typing import Any

import psycopg2
from psycopg import pq

from txnlab.bench.script import Compiled, Script, ScriptError
from txnlab.errors import ServerError
from txnlab.server.connect import first_line, with_params

RETRIED = {"40001": "serialization", "40P01": "deadlock"}
CONNECT_SECONDS = 30.0  # every client connected within this, or the run fails
STOP_GRACE_SECONDS = 2.0
APPLICATION_NAME = "txnlab bench client"
_context = multiprocessing.get_context("fork")  # children start with txnlab and psycopg2 loaded


@dataclass(frozen=True)
class Transaction:
    """What a client runs: the parsed `script`, or `function` (name) in the Python module at
    `module`, called as function(conn, rng)."""

    script: Script | None = None
    function: str | None = None
    module: Path | None = None


@dataclass
class ClientResult:
    """One client's tally; latencies in ms of its committed transactions; times are
    time.monotonic() seconds (one clock for every process of the machine)."""

    client: int
    committed: int = 0
    retries: int = 0
    serialization_failures: int = 0  # transactions given up after 40001 on the last try
    deadlock_failures: int = 0  # transactions given up after 40P01 on the last try
    errors_40001: int = 0  # every 40001 met, retried or not
    errors_40p01: int = 0  # every 40P01 met, retried or not
    started: float = 0.0
    ended: float = 0.0
    latencies_ms: array = field(default_factory=lambda: array("d"))
    stopped: str | None = None  # "SQLSTATE: message" of the error that stopped the client
    stopped_line: int | None = None  # the script line that failed (SQL workloads)


def session_options(level_sql: str, schema: str) -> str:
    """The startup packet's `options` that give every session the run's level and schema, as
    PGOPTIONS gives them to pgbench (libpq docs, "Parameter Key Words": options)."""
    level = level_sql.lower().replace(" ", "\\ ")  # a space inside one option is escaped (libpq)
    return f"-c default_transaction_isolation={level} -c search_path={schema}"


class Load:
    """`Load(dsn, transaction, clients, ...)` starts the client processes and waits until all
    are connected (ServerError if one cannot connect); `live()` is the committed count so
    far; `finish()` waits for the end and returns each client's result; `stop()` ends every
    child (called on any way out)."""

    def __init__(
        self, dsn: str, transaction: Transaction, clients: int, *, duration_s: float | None,
        transactions: int | None, retries: int, seed: int | None,
    ) -> None:
        self._counts = RawArray("q", clients)
        self._barrier = _context.Barrier(clients + 1)
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._pipes: list[multiprocessing.connection.Connection] = []
        base_seed = seed if seed is not None else int.from_bytes(os.urandom(8), "big")
        for stream in (sys.stdout, sys.stderr):  # a child flushes what it inherits: nothing may be pending
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        try:
            for client in range(clients):
                receive, send = _context.Pipe(duplex=False)
                process = _context.Process(
                    target=_client_main, name=f"txnlab-bench-client-{client}", daemon=True,
                    args=(client, dsn, transaction, duration_s, transactions, retries, base_seed + client,
                          self._barrier, self._counts, send),
                )
                process.start()
                send.close()
                self._processes.append(process)
                self._pipes.append(receive)
            self._wait_connected()
        except BaseException:
            self.stop()
            raise
        self.started = time.monotonic()

    def _wait_connected(self) -> None:
        try:
            self._barrier.wait(CONNECT_SECONDS)
        except Exception:  # BrokenBarrierError: a client could not connect (or the wait timed out)
            results = self._collect(timeout=STOP_GRACE_SECONDS)
            reasons = [r.stopped for r in results if r.stopped]
            raise ServerError(f"a bench client could not connect: {reasons[0] if reasons else 'no answer'}") from None

    def live(self) -> int:
        """Committed transactions so far, all clients together."""
        return sum(self._counts)

    def done(self) -> bool:
        """Whether every client has handed in its result (or ended without one)."""
        return all(pipe.poll() for pipe in self._pipes)

    def finish(self) -> list[ClientResult]:
        """Wait for every client to end; their results, in client order."""
        results = self._collect(timeout=None)
        self.stop()
        return results

    def _collect(self, timeout: float | None) -> list[ClientResult]:
        deadline = None if timeout is None else time.monotonic() + timeout
        results = []
        for client, pipe in enumerate(self._pipes):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            result = None
            if pipe.poll(remaining):
                try:
                    result = pipe.recv()
                except EOFError:
                    result = None
            results.append(result or ClientResult(client, stopped="the client process ended without a result"))
        return results

    def stop(self) -> None:
        """End every child still running (SIGTERM, then SIGKILL) and reap them all."""
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(STOP_GRACE_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in self._pipes:
            pipe.close()
        self._pipes = []
        self._processes = []


# --- the child ------------------------------------------------------------------------------

class StatementError(Exception):
    """A workload statement failed: `pgcode` is its SQLSTATE (None: the connection is lost)."""

    def __init__(self, pgcode: str | None, message: str) -> None:
        super().__init__(message)
        self.pgcode = pgcode


SQL_ERRORS = (StatementError, psycopg2.Error)  # both carry .pgcode
SWALLOWED = "25P02"  # in_failed_sql_transaction: the state a function left its transaction in


def _client_main(
    client: int, dsn: str, transaction: Transaction, duration_s: float | None, transactions: int | None,
    retries: int, seed: int, barrier: Any, counts: Any, send: multiprocessing.connection.Connection,
) -> None:
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _end_with_parent()
    gc.disable()  # a client allocates nothing that lives: no collector pauses in the window
    result = ClientResult(client)
    close: Callable[[], None] = lambda: None
    try:
        try:
            body, fresh, replay, close = _connect(dsn, transaction, client, result, seed)
        except Exception as exc:
            result.stopped = first_line(exc)
            barrier.abort()
            send.send(result)
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:  # another client could not connect: it says why
            send.send(result)
            return
        _run(body, fresh, replay, result, duration_s, transactions, retries, counts, client)
        send.send(result)
    except BaseException as exc:  # never a traceback from a child: the parent reports
        result.stopped = result.stopped or first_line(exc)
        try:
            send.send(result)
        except OSError:
            pass
    finally:
        close()


Body = Callable[[Any], None]
PR_SET_PDEATHSIG = 1  # prctl(2), Linux


def _end_with_parent() -> None:
    """Linux: SIGTERM this child when its parent dies, even by SIGKILL (prctl PR_SET_PDEATHSIG),
    so that no client outlives txnlab; elsewhere the parent's own cleanup has to do."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class _SavedState(Random):
    """The random.Random a Python workload function gets; `fresh()` saves its state before a
    transaction's first try, `replay()` restores it before a retry, as pgbench does."""

    def fresh(self) -> Random:
        self._saved = self.getstate()
        return self

    def replay(self, _: Random) -> Random:
        self.setstate(self._saved)
        return self


def _same(draws: tuple[float, ...]) -> tuple[float, ...]:
    """A script's retry gets its first try's draws (pgbench restores its random state)."""
    return draws


def _connect(
    dsn: str, transaction: Transaction, client: int, result: ClientResult, seed: int,
) -> tuple[Body, Callable[[], Any], Callable[[Any], Any], Callable[[], None]]:
    """The client's connection and one try of its transaction, compiled for speed (raises
    one of SQL_ERRORS on failure), with what a transaction's first try gets (`fresh()`) and a
    retry (`replay(first)`); and how to close the connection."""
    if transaction.script is not None:
        pg = pq.PGconn.connect(with_params(dsn, application_name=APPLICATION_NAME).encode())
        if pg.status != pq.ConnStatus.OK:
            message = pg.get_error_message() or "cannot connect"
            pg.finish()
            raise ConnectionError(message)
        compiled = script_transaction(pg, transaction.script, client, Random(seed).random, result)
        return compiled.transaction, compiled.draw, _same, pg.finish
    function = _load_function(transaction)
    conn = psycopg2.connect(dsn, application_name=APPLICATION_NAME)
    commit, rollback, info = conn.commit, conn.rollback, conn.info

    def call(rng: Random) -> None:
        try:
            function(conn, rng)
            if info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INERROR:
                # It caught an error and went on: COMMIT would be answered with ROLLBACK, silently.
                raise StatementError(SWALLOWED, f"function {transaction.function} returned with its transaction "
                                                "failed (an error caught and not raised again); COMMIT would roll it back")
            commit()
        except BaseException:
            rollback()
            raise

    state = _SavedState(seed)
    return call, state.fresh, state.replay, conn.close


def script_transaction(
    pg: pq.PGconn, script: Script, client: int, random: Callable[[], float], result: ClientResult,
) -> Compiled:
    """A script compiled for one client on its libpq connection (psycopg's binding): one PQexec
    per statement, as pgbench's simple protocol sends them; a \\gset stores the row's text as
    pgbench does; a failed try notes its script line in `result` and rolls back."""
    idle = pq.TransactionStatus.IDLE
    sqlstate, primary = pq.DiagnosticField.SQLSTATE, pq.DiagnosticField.MESSAGE_PRIMARY

    def failed(res: pq.PGresult) -> None:
        code = res.error_field(sqlstate)
        message = res.error_field(primary) or res.error_message or pg.get_error_message()
        raise StatementError(code.decode() if code else None, first_line(Exception(message.decode())))

    def abandon(exc: BaseException) -> None:
        result.stopped_line = compiled.line_of(exc)
        if pg.status == pq.ConnStatus.OK and pg.transaction_status != idle:
            pg.exec_(b"ROLLBACK")

    runtime = {"_exec": pg.exec_, "_OK": _OK, "_failed": failed, "_gset": _gset, "_abandon": abandon}
    compiled = script.compile(client, random, runtime)
    return compiled


_OK = frozenset(int(s) for s in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY))


def _gset(res: pq.PGresult, prefix: str, line: int) -> dict[str, str]:
    """The one row's columns as {prefix + name: text}, as pgbench's \\gset stores them."""
    if res.ntuples != 1:
        raise ScriptError(line, f"\\gset expects one row, the query returned {res.ntuples}")
    row = {}
    for index in range(res.nfields):
        value = res.get_value(0, index)
        name = (res.fname(index) or b"").decode()
        if value is None:
            raise ScriptError(line, f"\\gset: column {name} is NULL")
        row[prefix + name] = value.decode()
    return row


def _load_function(transaction: Transaction) -> Callable[[Any, Random], None]:
    if transaction.module is None or transaction.function is None:
        raise ValueError("a Python workload needs its module and function")
    name = f"txnlab_bench_{transaction.module.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, transaction.module)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {transaction.module}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(transaction.module.parent))
    spec.loader.exec_module(module)
    function = getattr(module, transaction.function, None)
    if not callable(function):
        raise AttributeError(f"{transaction.module.name} has no function {transaction.function}")
    return function


def _run(
    body: Body, fresh: Callable[[], Any], replay: Callable[[Any], Any], result: ClientResult,
    duration_s: float | None, transactions: int | None, retries: int, counts: Any, client: int,
) -> None:
    clock = time.monotonic
    result.started = started = clock()
    deadline = started + duration_s if duration_s is not None else float("inf")
    remaining = transactions if transactions is not None else -1
    latencies = result.latencies_ms
    while remaining != 0 and clock() < deadline:
        remaining -= 1
        argument = fresh()
        begun = clock()
        tries = 0
        while True:
            try:
                body(argument)
            except SQL_ERRORS as exc:
                kind = RETRIED.get(exc.pgcode or "")
                if kind is None:
                    result.stopped = f"{exc.pgcode or 'no SQLSTATE'}: {first_line(exc)}"
                    result.ended = clock()
                    return
                if kind == "serialization":
                    result.errors_40001 += 1
                else:
                    result.errors_40p01 += 1
                if tries < retries and clock() < deadline:  # pgbench retries nothing once -T is over
                    tries += 1
                    result.retries += 1
                    argument = replay(argument)
                    continue
                if kind == "serialization":
                    result.serialization_failures += 1
                else:
                    result.deadlock_failures += 1
                break
            else:
                ended = clock()
                latencies.append((ended - begun) * 1000.0)
                result.committed += 1
                counts[client] = result.committed
                break
        result.ended = clock()
