"""`txnlab drivers`: every Python driver side by side, derived live on the server."""

from __future__ import annotations

from pathlib import Path

import click

from txnlab.cli.options import terminal_width
from txnlab.cli.run import _check_writable, _write
from txnlab.drivers_table.bench import drivers_table
from txnlab.drivers_table.model import DriversTable
from txnlab.drivers_table.render import html_page, render_json, render_markdown, render_text
from txnlab.errors import ExitCode, UsageError


@click.command("drivers")
@click.option("--format", "output_format", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="Output format; json's keys are in docs/drivers.md.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the table as an HTML page (FILE.html).")
@click.option("--dsn", metavar="DSN",
              help="PostgreSQL to use (else $TXNLAB_DSN, $DATABASE_URL, or the embedded server).")
def drivers_command(output_format: str, output: Path | None, dsn: str | None) -> int:
    """How psycopg2, psycopg 3, asyncpg and SQLAlchemy on each handle transactions.

    Each cell is derived now, on this server, with the installed driver versions: real
    driver code runs in a scratch database through a wire tap; the cell shows what the
    driver sent, then what happened (the server's session state, committed rows, SQLSTATEs,
    the driver's own transaction status). A probe that fails shows "error: ..." in its cell.
    """
    if output is not None:
        if output.suffix.lower() not in (".html", ".htm"):
            raise UsageError(f"cannot write {output}: the output file must end in .html")
        _check_writable(output)
    table = drivers_table(dsn)
    if output_format == "json":
        click.echo(render_json(table))
    elif output_format == "markdown":
        click.echo(render_markdown(table))
    else:
        click.echo(render_text(table, terminal_width()))
    if output is not None:
        _write(output, html_page(table))
    _warn_failed_probes(table)
    return int(ExitCode.OK)


def _warn_failed_probes(table: DriversTable) -> None:
    """One line on stderr when a probe raised something unexpected (its cell says what)."""
    failed = [(b, d) for (b, d), cell in table.cells.items() if cell.error is not None]
    if failed:
        behaviour, driver = failed[0]
        click.echo(f"txnlab: warning: {len(failed)} cell(s) could not be derived, the first "
                   f"{behaviour} on {driver}: {table.cells[failed[0]].error}", err=True)
