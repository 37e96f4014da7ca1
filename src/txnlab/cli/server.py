"""`txnlab server status|url|start|stop`: the embedded PostgreSQL."""

from __future__ import annotations

import click

from pathlib import Path

from txnlab.server.embedded import (
    EmbeddedServer,
    installed_postgres,
    maintenance_connection,
    other_data_dirs,
    read_postmaster,
)
from txnlab.server.selection import choose_server


@click.group("server")
def server_group() -> None:
    """Manage the embedded PostgreSQL server (in your cache directory; one per installation)."""


@server_group.command("status")
def status_command() -> None:
    """Say which server txnlab would use, whether the embedded one is running, and its runs in progress."""
    choice = choose_server()
    server = EmbeddedServer()
    state = server.state()
    if choice.origin != "embedded":
        click.echo(f"txnlab uses the server from {choice.origin}; the embedded server is not used.")
    click.echo(f"installation: {installed_postgres()}")
    for data_dir, binary in other_data_dirs(server.data_dir):
        running = "running" if read_postmaster(data_dir) else "stopped"
        gone = "" if Path(binary).exists() else " (deleted)"
        click.echo(f"other installation's server: {running}, data directory {data_dir}, binary {binary}{gone}")
    if state is None:
        click.echo(f"embedded server: stopped (data directory {server.data_dir})")
        return
    conn = maintenance_connection(state.dsn)
    try:
        version = conn.server_version
    finally:
        conn.close()
    runs = server.runs_in_progress(state)
    click.echo(
        f"embedded server: running, PostgreSQL {version // 10000}.{version % 10000}, "
        f"pid {state.pid}, socket {state.socket_dir}, data directory {server.data_dir}"
    )
    databases = sorted({run.database for run in runs})
    click.echo(f"runs in progress: {len(runs)} txnlab connection(s)" + (f" in {', '.join(databases)}" if runs else ""))


@server_group.command("url")
def url_command() -> None:
    """Print the embedded server's connection string (starting it if needed), e.g. for psql."""
    dsn = EmbeddedServer().ensure_running()
    params = dict(part.split("=", 1) for part in dsn.split())
    click.echo(f"postgresql://{params['user']}@/{params['dbname']}?host={params['host']}&port={params['port']}")


@server_group.command("start")
def start_command() -> None:
    """Start the embedded server now (txnlab also starts it on first use)."""
    EmbeddedServer().ensure_running()
    click.echo("embedded server: running")


@server_group.command("stop")
@click.option("--force", is_flag=True, help="Stop it even while txnlab runs are in progress (they end with exit 3).")
def stop_command(force: bool) -> None:
    """Stop the embedded server; its data directory stays for next time.

    While txnlab runs are in progress on it, refuses with exit code 3 unless --force.
    """
    click.echo("embedded server: stopped" if EmbeddedServer().stop(force=force) else "embedded server: was not running")
