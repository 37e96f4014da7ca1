"""Run a Python scenario's own code contained: importing the file and its `play(run)`.

A scenario's code runs in a daemon thread of its own, never in the main thread, so that
whatever it does ends the run in one line with exit 2 (ScenarioError) instead of taking
the process with it:

- an exception of any kind, BaseException included (SystemExit from `sys.exit()`, a
  KeyboardInterrupt it raises itself): the line names the scenario's file and the line
  of it that raised, from the traceback (else the line of `def play`);
- a file whose import does not finish within IMPORT_TIMEOUT_SECONDS;
- a `play()` that makes no progress: it has not asked the run to do anything (a step,
  a call, `finish`) for longer than the run's step timeout. Time spent inside those
  requests is the scheduler's, which has its own per-step timeout; time spent waiting
  for the presenter in workshop mode is not the scenario's either.

A Python thread cannot be killed, so a stuck scenario thread is abandoned: every
backend of the run is terminated (`Scheduler.stop(abandon=True)`), the run ends, and the
daemon thread dies with the process. Any later request it makes raises `Abandoned`.

Every request the scenario makes of the run (`run.step`, `run.sql`, `run.call`,
`run.watch`, `run.finish`) is carried out by the main thread, which serves them while it
waits: the scheduler, the lock monitor and the workshop's prompts stay on one thread,
and a signal (always delivered to the main thread) ends the run exactly as it ends a
YAML scenario's.

What the scenario prints goes to stderr (stdout carries only txnlab's output, so
`--format json` stays valid): while scenario code runs, `sys.stdout` sends the writes of
every thread but the main one to stderr.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

import psycopg2

from txnlab.errors import ScenarioError, TxnlabError

IMPORT_TIMEOUT_SECONDS = 5.0
# Raised by a request, these end the run (as they end a YAML scenario's); any other
# exception is handed to the scenario, whose code made the mistake.
RUN_ENDING = (TxnlabError, psycopg2.OperationalError, psycopg2.InterfaceError)
POLL_SECONDS = 0.05  # how often a waiting thread looks up: the bound on reacting to a stuck scenario


class Abandoned(BaseException):
    """Raised in a scenario's thread once the run has ended without it."""


@dataclass
class _Outcome:
    """How a scenario thread's code ended: `error` is None when it returned."""

    error: BaseException | None = None


@dataclass
class _Request:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class Relay:
    """Carries a scenario thread's requests to the main thread, which performs them."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self.abandoned = False

    def perform(self, function: Callable[..., Any], *args: Any) -> Any:
        """In the scenario's thread: have the main thread run `function(*args)`; its
        result, or its exception when it is the scenario's to handle (a KeyError for an
        unknown step, say). Raises Abandoned once the run has ended."""
        if threading.current_thread() is threading.main_thread():
            return function(*args)
        if self.abandoned:
            raise Abandoned()
        request = _Request(function, args)
        self._requests.put(request)
        while not request.done.wait(POLL_SECONDS):
            if self.abandoned:
                raise Abandoned()
        if request.error is not None:
            raise request.error
        return request.value

    def serve(self, worker: threading.Thread, stall_seconds: float) -> bool:
        """In the main thread: perform the requests of `worker` until it ends (True) or has
        asked for nothing for `stall_seconds` (False). What ends the run (RUN_ENDING, a
        signal) is raised here, in the main thread; the scenario's thread gets Abandoned."""
        last = time.monotonic()
        while worker.is_alive():
            try:
                request = self._requests.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if time.monotonic() - last > stall_seconds:
                    return False
                continue
            request.error = Abandoned()  # what the scenario sees if this ends the run
            try:
                request.value = request.function(*request.args)
                request.error = None
            except Exception as exc:  # noqa: BLE001 - sorted below
                if isinstance(exc, RUN_ENDING):
                    raise
                request.error = exc  # the scenario's mistake, raised where it made it
            finally:
                request.done.set()
            last = time.monotonic()
        return True


def import_contained(execute: Callable[[], None], source: Path) -> None:
    """Run `execute` (a module's import) in a scenario thread; ScenarioError on any
    exception (SyntaxError excepted: the caller reports its own line) or when it has
    not finished within IMPORT_TIMEOUT_SECONDS."""
    with _stdout_to_stderr() as workers:
        worker, outcome = _start(execute, "txnlab-scenario-import", workers)
        worker.join(IMPORT_TIMEOUT_SECONDS)
    if worker.is_alive():
        raise ScenarioError(
            str(source),
            f"importing it did not finish within {IMPORT_TIMEOUT_SECONDS:g} s (an endless loop?)",
            _running_line(worker, source),
        )
    if isinstance(outcome.error, SyntaxError):
        raise outcome.error
    if outcome.error is not None:
        raise ScenarioError(str(source), f"importing it failed: {_said(outcome.error)}", _raising_line(outcome.error, source))


def play_contained(
    play: Callable[[], None], relay: Relay, source: Path, play_line: int | None, stall_seconds: float,
    abandon_run: Callable[[], None],
) -> None:
    """Run `play` (the scenario's `play(run)`, with a run whose requests go through
    `relay`) in a scenario thread, serving its requests until it returns.

    Raises ScenarioError (exit 2) when it raises anything or stalls for `stall_seconds`;
    whatever ends the run while the thread is still alive (a stall, a signal, a lost
    connection) first calls `abandon_run`, which must end every session of the run.
    """
    with _stdout_to_stderr() as workers:
        worker, outcome = _start(play, "txnlab-scenario-play", workers)
        try:
            if not relay.serve(worker, stall_seconds):
                raise ScenarioError(
                    str(source),
                    f"play() asked for nothing for {stall_seconds:g} s (the step timeout); txnlab stopped the run",
                    _running_line(worker, source) or play_line,
                )
        finally:
            if worker.is_alive():
                relay.abandoned = True
                abandon_run()
    error = outcome.error
    if error is None:
        return
    if isinstance(error, SystemExit):
        problem = f"play() called sys.exit({error.code!r}); a scenario ends by returning from play()"
    else:
        problem = f"play() raised {_said(error)}"
    raise ScenarioError(str(source), problem, _raising_line(error, source) or play_line)


def _start(target: Callable[[], None], name: str, workers: list[threading.Thread]) -> tuple[threading.Thread, _Outcome]:
    """Run `target` in a new daemon thread, added to `workers`; the outcome is filled in when it ends."""
    outcome = _Outcome()

    def contained() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - everything the scenario raises is reported
            outcome.error = exc

    worker = threading.Thread(target=contained, name=name, daemon=True)
    workers.append(worker)
    worker.start()
    return worker, outcome


def _said(error: BaseException) -> str:
    """`Type: message`, on one line."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _raising_line(error: BaseException, source: Path) -> int | None:
    """The line of the scenario file where `error` was raised (its innermost frame there)."""
    line = None
    tb: TracebackType | None = error.__traceback__
    while tb is not None:
        if _is_source(tb.tb_frame, source):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _running_line(worker: threading.Thread, source: Path) -> int | None:
    """The line of the scenario file that the stuck `worker` is running now."""
    frame = sys._current_frames().get(worker.ident or -1)
    while frame is not None:
        if _is_source(frame, source):
            return frame.f_lineno
        frame = frame.f_back
    return None


def _is_source(frame: FrameType, source: Path) -> bool:
    return Path(frame.f_code.co_filename).resolve() == source.resolve()


class _ThreadRoutedStream:
    """Stands in for sys.stdout: the main thread writes to `stream`, every other thread
    (a scenario's code, its functions run on session threads) to `diverted`."""

    def __init__(self, stream: IO[str], diverted: IO[str]) -> None:
        self.stream = stream
        self.diverted = diverted

    def _target(self) -> IO[str]:
        return self.stream if threading.current_thread() is threading.main_thread() else self.diverted

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


@contextmanager
def _stdout_to_stderr() -> Iterator[list[threading.Thread]]:
    """Route other threads' stdout to stderr while the scenario threads started in the
    block (added to the list it gives) run; one left running (abandoned) keeps the
    routing in place for the rest of the process."""
    original = sys.stdout
    workers: list[threading.Thread] = []
    if isinstance(original, _ThreadRoutedStream):
        yield workers
        return
    sys.stdout = _ThreadRoutedStream(original, sys.stderr)  # type: ignore[assignment]
    try:
        yield workers
    finally:
        if not any(worker.is_alive() for worker in workers):
            sys.stdout = original
