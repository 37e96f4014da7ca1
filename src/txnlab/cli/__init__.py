"""The `txnlab` command line: list, show, run, matrix, bench, myths, drivers, report, demo, new, edit, docs, server, specs.

Exit codes (also in `txnlab --help` and the README):
  0 everything as expected, 1 an observation differs from its expectation,
  2 bad input or usage, 3 server unreachable or setup failed, 128+n ended by signal n
  (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP, 131 SIGQUIT, 141 a closed output pipe).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

import click
import psycopg2

from txnlab import __version__, signals
from txnlab.cli.authoring import edit_command, new_command
from txnlab.cli.bench import bench_command
from txnlab.cli.catalogue import list_command, show_command
from txnlab.cli.drivers import drivers_command
from txnlab.cli.myths import myths_command
from txnlab.cli.run import demo_command, docs_command, matrix_command, report_command, run_command
from txnlab.cli.server import server_group
from txnlab.cli.specs import specs_command
from txnlab.errors import ExitCode, TxnlabError
from txnlab.redaction import redacting_main
from txnlab.server.connect import first_line

EPILOG = """\b
Exit codes:
  0      every observation matched its expectation
  1      an observation differs from its expectation
  2      bad input: unknown scenario or tag, malformed scenario file,
         scenario SQL that fails (file:line, SQLSTATE), bad option,
         no terminal for --step
  3      the server's side: unreachable (within 5 s); a privilege,
         extension or resource missing (those runs show "could not
         run"); a connection of txnlab's own lost; `server stop` while
         runs are going on
  128+n  ended by signal n, after cleaning up (no sessions, no scratch
         database): 129 SIGHUP (terminal closed), 130 SIGINT (Ctrl-C),
         131 SIGQUIT (Ctrl-\\), 143 SIGTERM; 141 when the reader of the
         output went away (| head), without a message
\b
Server: --dsn, else $TXNLAB_DSN, else $DATABASE_URL, else an embedded
PostgreSQL that txnlab starts in your cache directory and keeps running
(`txnlab server stop` stops it). Every run works in a scratch database
that txnlab creates and drops; it never writes anywhere else.
"""


class _OutputClosed(BaseException):
    """The reader of stdout went away (EPIPE)."""


class _Group(click.Group):
    """click's group, except that a closed stdout reaches `main` (click itself would exit 1)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _OutputClosed() from None


@click.group(cls=_Group, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="txnlab")
def cli() -> None:
    """Watch PostgreSQL transactions behave, step by step, on a real server."""


cli.add_command(list_command)
cli.add_command(show_command)
cli.add_command(run_command)
cli.add_command(matrix_command)
cli.add_command(bench_command)
cli.add_command(demo_command)
cli.add_command(myths_command)
cli.add_command(drivers_command)
cli.add_command(new_command)
cli.add_command(edit_command)
cli.add_command(docs_command)
cli.add_command(report_command)
cli.add_command(server_group)
cli.add_command(specs_command)


@redacting_main  # every line printed, on stdout or stderr, is scrubbed of the DSN's passwords
def main(argv: list[str] | None = None) -> None:
    """Entry point: turns every failure a user can cause into one line and an exit code.

    The run's `finally` blocks have cleaned up by the time an exception gets here, so a
    signal's message can say so: had cleaning up failed, its error would have replaced
    the signal's exception (see txnlab.signals for which signals are handled). Once the
    exit code is chosen, further signals are ignored.
    """
    try:
        code = _run(argv)
    except signals.Interrupted as exc:  # after the run's own handling: its cleanup is done
        code = _interrupted(exc.signum)
    signals.ignore_further()
    sys.exit(code)


def _run(argv: list[str] | None) -> int:
    """Run the command; its exit code, its one line about how it ended printed."""
    try:
        code = cli.main(args=argv, prog_name="txnlab", standalone_mode=False)
    except _OutputClosed:  # `txnlab ... | head`: the reader has what it wanted; say nothing
        signals.silence_stdout()
        return int(ExitCode.BROKEN_PIPE)
    except (click.exceptions.Abort, KeyboardInterrupt, signals.Interrupted) as exc:  # click turns Ctrl-C into Abort
        if isinstance(exc.__context__, EOFError) and signals.received() is None:
            # No signal came: a prompt met the end of its input (Ctrl-D), and click said Abort.
            click.echo(err=True)  # the prompt left the cursor at the end of its line
            _say("stopped: the input ended (Ctrl-D) at a prompt; nothing was left behind")
            return int(ExitCode.INTERRUPTED)
        return _interrupted(signals.received() or signal.SIGINT, getattr(exc, "left_behind", ()))
    except Exception as exc:
        if (interrupted := signals.interruption(exc)) is not None:  # the signal, wrapped by the code it hit
            return _interrupted(interrupted.signum, interrupted.left_behind)
        if (signum := signals.received()) is not None:  # cleaning up after the signal failed
            _say(f"error: interrupted by {signals.describe(signum)}, then: {_describe(exc)}")
            return signals.exit_code(signum)
        if isinstance(exc, click.ClickException):
            _say(f"error: {_usage_problem(exc)}")
            return exc.exit_code
        if not isinstance(exc, (TxnlabError, psycopg2.OperationalError, psycopg2.InterfaceError)):
            raise  # a bug in txnlab: the traceback is what a bug report needs
        _say(f"error: {_describe(exc)}")
        return int(exc.exit_code) if isinstance(exc, TxnlabError) else int(ExitCode.SERVER)
    if (signum := signals.received()) is not None:
        # The signal came, yet the command ended as if it had not: its exception was lost on
        # the way (swallowed by code it interrupted). The run is not a verdict (0 or 1).
        return _interrupted(signum)
    return code if isinstance(code, int) else 0


def _interrupted(signum: int, left_behind: Sequence[str] = ()) -> int:
    """Say which signal ended the run and what it left (the warnings above name each change)."""
    if left_behind:
        _say(
            f"interrupted by {signals.describe(signum)}; its sessions and scratch database are gone, but "
            f"{len(left_behind)} change(s) to the server made during the run remain (see the warnings above)"
        )
    else:
        _say(f"interrupted by {signals.describe(signum)}; nothing was left behind")
    return signals.exit_code(signum)


def _describe(exc: BaseException) -> str:
    """The one-line account of an error that ended the run."""
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return f"lost the connection to PostgreSQL: {first_line(exc)}"
    return first_line(exc) if not isinstance(exc, TxnlabError) else str(exc)


def _usage_problem(exc: click.ClickException) -> str:
    """click's complaint in one line, and where to look (click itself prints usage, a hint and
    the error on four lines)."""
    problem = " ".join(exc.format_message().split()).rstrip(".")
    context = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and context is not None:
        return f"{problem}; see '{context.command_path} --help'"
    return problem


def _say(message: str) -> None:
    """Every line the CLI prints about how it ended goes through here, on stderr."""
    try:
        click.echo(f"txnlab: {message}", err=True)
    except OSError:  # stderr is a closed pipe or a terminal that hung up: nobody to tell
        signals.silence_stdout()
