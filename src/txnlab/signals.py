"""Signals: whatever a user or a terminal sends ends the run cleanly, with exit code 128+n.

The handled signals are SIGINT (Ctrl-C), SIGQUIT (Ctrl-\\), SIGTERM (`kill`, a service
manager) and SIGHUP (the terminal window closed). The first one raises `Interrupted` in
the main thread, as Ctrl-C's KeyboardInterrupt would be; the run's `finally` blocks end the
sessions and drop the scratch database, and the CLI exits 128+n (130 for SIGINT). Any
further signal is ignored while that cleanup runs: a second Ctrl-C must not cut it short.

SIGPIPE stays ignored, as Python sets it: output piped into `head` that stops reading
raises BrokenPipeError, which ends the run through the same `finally` blocks; the CLI
then exits 141 (128 + SIGPIPE) without a word, as `yes | head` does.

This module imports only the standard library: the entry point (`txnlab.__main__`)
installs the handlers before it imports anything heavy, so a signal that arrives while
the CLI's modules load ends the process with the same one line and exit code.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

DESCRIPTIONS = {
    signal.SIGINT: "SIGINT (Ctrl-C)",
    signal.SIGQUIT: "SIGQUIT (Ctrl-\\)",
    signal.SIGTERM: "SIGTERM",
    signal.SIGHUP: "SIGHUP (the terminal hung up)",
    signal.SIGPIPE: "SIGPIPE (the output was closed)",
}

REDELIVERY_DELAY_SECONDS = 0.01  # see _unraisable
SWALLOWED_AFTER_SECONDS = 0.2  # see _watch: far longer than an exception takes to reach a handler
WATCH_INTERVAL_SECONDS = 0.02
_received: int | None = None  # the first handled signal, once one has arrived
_over = False  # set by ignore_further()
_undelivered = False  # the Interrupted raised was swallowed (see _unraisable, _watch)
_watchdog: threading.Thread | None = None


class Interrupted(BaseException):
    """A handled signal arrived; raised in the main thread by the handler.

    Like KeyboardInterrupt it is no Exception, so only `finally` blocks see it on its way
    out; unlike it, click's prompts do not turn it into Abort (or print a newline)."""

    def __init__(self, signum: int) -> None:
        super().__init__(describe(signum))
        self.signum = signum
        # What the cleanup on its way out could not undo (server changes a run made outside
        # its scratch database, one line each): the CLI's last line must not say "nothing".
        self.left_behind: list[str] = []


def describe(signum: int) -> str:
    """The signal's name as a user knows it, e.g. "SIGINT (Ctrl-C)"."""
    return DESCRIPTIONS.get(signum) or signal.Signals(signum).name


def exit_code(signum: int) -> int:
    """128 + the signal's number: what a shell reports for a process a signal ended."""
    return 128 + signum


def install() -> None:
    """Handle every signal in HANDLED from now on (main thread only, as Python requires),
    except those the process was started with ignored: `nohup txnlab ...` ignores SIGHUP,
    a shell's background job SIGINT and SIGQUIT, and they stay ignored."""
    for signum in HANDLED:
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _handle)
    if sys.unraisablehook is not _unraisable:
        _unraisable.previous = sys.unraisablehook  # type: ignore[attr-defined]
        sys.unraisablehook = _unraisable


def received() -> int | None:
    """The first handled signal that arrived, or None: the run is being abandoned when set."""
    return _received


def interruption(exc: BaseException | None) -> Interrupted | None:
    """The signal's Interrupted that `exc` is or carries, or None.

    Code that a signal interrupts may wrap its exception in another: Python 3.11 turns what
    a class's `__set_name__` raises into RuntimeError (a dataclass field's, a
    cached_property's: any class defined while a module loads), C code may raise SystemError
    or ImportError over it. The wrapper keeps it as its __cause__ or __context__; whoever
    decides how the run ended looks there, so that the signal is never taken for a bug
    (a traceback, exit 1) or for an error met while cleaning up after it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Interrupted):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def ignore_further() -> None:
    """The run is over and its exit code chosen: a signal from now on (while the
    interpreter shuts down, in an atexit callback of a library, say) changes nothing."""
    global _over
    _over = True


def _handle(signum: int, frame: FrameType | None) -> None:
    global _received, _undelivered
    if _over or (_received is not None and not _undelivered):
        return  # the run is ending or over already; let its cleanup finish
    if _received is None:
        _received = signum
        _start_watchdog()
    _undelivered = False
    raise Interrupted(_received)


def _start_watchdog() -> None:
    global _watchdog
    if _watchdog is None:
        _watchdog = threading.Thread(target=_watch, name="txnlab-signal-watchdog", daemon=True)
        _watchdog.start()


def _watch() -> None:
    """Once a signal has arrived, check every WATCH_INTERVAL_SECONDS that its Interrupted is
    still on its way out of the main thread: raised there, the main thread runs `finally`
    blocks, `except` clauses and `__exit__` methods with it as the exception being handled
    (or as the cause or context of the one being handled) until the CLI has chosen the exit
    code (`ignore_further`). Code that catches every exception (a library's bare `except:`)
    would otherwise swallow it and go on with the run, and every later signal would be
    ignored as if cleanup were running: a run stuck in a loop would never end. When the
    main thread has been handling no Interrupted for SWALLOWED_AFTER_SECONDS, the signal
    is sent to the main thread again (a real signal: it also interrupts a blocking call),
    and its handler raises Interrupted once more."""
    main = threading.main_thread()
    quiet_since: float | None = None
    while not _over and main.is_alive() and main.ident is not None and _received is not None:
        handled = sys._current_exceptions().get(main.ident)
        if isinstance(handled, tuple):  # Python < 3.12: (type, value, traceback)
            handled = handled[1]
        if interruption(handled) is not None or _undelivered:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= SWALLOWED_AFTER_SECONDS:
            _redeliver_to_main(_received, main.ident)
            quiet_since = None
        time.sleep(WATCH_INTERVAL_SECONDS)


def _redeliver_to_main(signum: int, main_ident: int) -> None:
    global _undelivered
    _undelivered = True
    try:
        signal.pthread_kill(main_ident, signum)
    except OSError:  # the main thread has just ended
        pass


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """sys.unraisablehook: Python swallows an exception raised where it cannot propagate
    (a weakref callback such as importlib's module-lock clean-up, a __del__), printing
    "Exception ignored in ...". Had that exception been our Interrupted, the run would go
    on with every further signal ignored (the first one is recorded). Deliver it again
    instead, silently, once the main thread has left that place (from another thread: the
    main thread would run the handler again before this hook returns, where it is
    swallowed too). `received()` keeps naming the signal meanwhile."""
    global _undelivered
    if isinstance(unraisable.exc_value, Interrupted) and not _over:
        _undelivered = True
        threading.Thread(target=_deliver_again, args=(unraisable.exc_value.signum,), daemon=True).start()
        return
    _unraisable.previous(unraisable)  # type: ignore[attr-defined]


def _deliver_again(signum: int) -> None:
    time.sleep(REDELIVERY_DELAY_SECONDS)
    if _undelivered and not _over:
        _thread.interrupt_main(signum)  # runs the handler in the main thread, as the signal did


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold every handled signal back for a short critical section (creating or dropping
    the scratch database) so that it is never cut in half; a signal that arrived meanwhile
    takes effect when the section ends, through whatever handler was there before
    (txnlab's, Python's KeyboardInterrupt, or the default action), unless an exception
    is already on its way out. Outside the main thread, where Python runs no signal
    handler, it does nothing.

    A signal that lands just before the section begins raises as usual, before its first
    statement: what must happen however the run ends goes through `uninterrupted`.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous: dict[int, signal.Handlers | object] = {}
    try:  # a signal may land while the handlers are being swapped: each swapped one is restored
        for signum in HANDLED:
            if signal.getsignal(signum) != signal.SIG_IGN:
                previous[signum] = signal.signal(signum, lambda n, _: arrived.append(n))
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if arrived and sys.exc_info()[0] is None:
        _redeliver(arrived[0], previous[arrived[0]])


def uninterrupted(action: Callable[[], object]) -> None:
    """`action()` inside deferred_signals(), run even when a signal lands just before the
    section begins (on a run's normal way out, say): that signal raises in the caller
    once `action` is done, and further ones wait (see _handle). For what must happen
    however the run ends: dropping the scratch database, undoing its server changes."""
    begun = False
    try:
        with deferred_signals():
            begun = True
            action()
    finally:
        if not begun:
            with deferred_signals():
                action()


def _redeliver(signum: int, handler: signal.Handlers | object) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone (EPIPE) or the terminal hung up
    (EIO), so that the interpreter's last flush at exit does not print a complaint."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (captured by a test): nothing will flush it to a closed pipe
