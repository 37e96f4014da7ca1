"""The `txnlab` command line: list, show, run, matrix, myths, report, demo, new, edit, docs, server.

Exit codes (also in `txnlab --help` and the README):
  0 everything as expected, 1 an observation differs from its expectation,
  2 bad input or usage, 3 server unreachable or setup failed, 130 interrupted.
"""

from __future__ import annotations

import sys

import click
import psycopg2

from txnlab import __version__
from txnlab.cli.authoring import edit_command, new_command
from txnlab.cli.catalogue import list_command, show_command
from txnlab.cli.myths import myths_command
from txnlab.cli.run import demo_command, docs_command, matrix_command, report_command, run_command
from txnlab.cli.server import server_group
from txnlab.errors import ExitCode, TxnlabError
from txnlab.redaction import redacting_main
from txnlab.server.connect import first_line

EPILOG = """\b
Exit codes:
  0    every observation matched its expectation
  1    an observation differs from its expectation
  2    bad input: unknown scenario, malformed scenario file, bad option
  3    the server is unreachable, a privilege is missing, or setup failed
  130  interrupted (Ctrl-C); sessions and the scratch database were cleaned up
\b
Server: --dsn, else $TXNLAB_DSN, else $DATABASE_URL, else an embedded
PostgreSQL that txnlab starts in your cache directory and keeps running
(`txnlab server stop` stops it). Every run works in a scratch database
that txnlab creates and drops; it never writes anywhere else.
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="txnlab")
def cli() -> None:
    """Watch PostgreSQL transactions behave, step by step, on a real server."""


cli.add_command(list_command)
cli.add_command(show_command)
cli.add_command(run_command)
cli.add_command(matrix_command)
cli.add_command(demo_command)
cli.add_command(myths_command)
cli.add_command(new_command)
cli.add_command(edit_command)
cli.add_command(docs_command)
cli.add_command(report_command)
cli.add_command(server_group)


@redacting_main  # every line printed, on stdout or stderr, is scrubbed of the DSN's passwords
def main(argv: list[str] | None = None) -> None:
    """Entry point: turns every failure a user can cause into one line and an exit code."""
    try:
        code = cli.main(args=argv, prog_name="txnlab", standalone_mode=False)
    except TxnlabError as exc:
        click.echo(f"txnlab: error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo("txnlab: interrupted; sessions and the scratch database were cleaned up", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        click.echo(f"txnlab: error: lost the connection to PostgreSQL: {first_line(exc)}", err=True)
        sys.exit(int(ExitCode.SERVER))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
