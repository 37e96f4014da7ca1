"""The failures a user can cause, each with the exit code the CLI documents."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, stable and documented in `txnlab --help` and the README."""

    OK = 0
    MISMATCH = 1  # an observation differs from its expectation
    BAD_INPUT = 2  # bad scenario file or scenario SQL, unknown name, bad usage
    SERVER = 3  # server unreachable, a privilege/extension/resource missing, a connection lost
    # A signal ended the run (after cleaning up): 128 + the signal's number, as shells
    # report it. The handled ones (see txnlab.signals):
    HANGUP = 129  # SIGHUP: the terminal closed
    INTERRUPTED = 130  # SIGINT: Ctrl-C
    QUIT = 131  # SIGQUIT: Ctrl-\
    BROKEN_PIPE = 141  # SIGPIPE: the reader of the output went away (`txnlab ... | head`); no message
    TERMINATED = 143  # SIGTERM: kill, a service manager, a CI runner's cancel


class TxnlabError(Exception):
    """Base class: carries the one-line message and the exit code for the CLI."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


class ScenarioError(TxnlabError):
    """A scenario file is malformed; the message names the file and line."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, source: str, problem: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


class UsageError(TxnlabError):
    """The user asked for something that does not exist (an unknown scenario, say)."""

    exit_code = ExitCode.BAD_INPUT


class ServerError(TxnlabError):
    """The server cannot be reached or used: connection refused, missing privilege."""

    exit_code = ExitCode.SERVER


def did_you_mean(word: str, known: Iterable[str], *, n: int = 1) -> str:
    """"did you mean X? " (up to `n` close matches of `word` among `known`, by difflib's
    similarity ratio, best first), or "" when none is close: the hint every "unknown name"
    message of the CLI puts before the list of valid names."""
    close = difflib.get_close_matches(word, list(known), n=n)
    return f"did you mean {', '.join(close)}? " if close else ""
