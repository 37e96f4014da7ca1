"""`txnlab server status|url|start|stop`: the embedded PostgreSQL."""

from __future__ import annotations

import click

from txnlab.server.connect import connect
from txnlab.server.embedded import EmbeddedServer
from txnlab.server.selection import choose_server


@click.group("server")
def server_group() -> None:
    """Manage the embedded PostgreSQL server (in your cache directory)."""


@server_group.command("status")
def status_command() -> None:
    """Say which server txnlab would use, and whether the embedded one is running."""
    choice = choose_server()
    server = EmbeddedServer()
    state = server.state()
    if choice.origin != "embedded":
        click.echo(f"txnlab uses the server from {choice.origin}; the embedded server is not used.")
    if state is None:
        click.echo(f"embedded server: stopped (data directory {server.data_dir})")
        return
    conn = connect(state.dsn, autocommit=True)
    try:
        version = conn.server_version
    finally:
        conn.close()
    click.echo(
        f"embedded server: running, PostgreSQL {version // 10000}.{version % 10000}, "
        f"pid {state.pid}, socket {state.socket_dir}, data directory {server.data_dir}"
    )


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
def stop_command() -> None:
    """Stop the embedded server; its data directory stays for next time."""
    click.echo("embedded server: stopped" if EmbeddedServer().stop() else "embedded server: was not running")
