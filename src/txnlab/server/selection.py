"""Choose the target server: --dsn, else TXNLAB_DSN, else DATABASE_URL, else the embedded server."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

from txnlab.errors import UsageError
from txnlab.redaction import dsn_problem


@dataclass(frozen=True)
class ServerChoice:
    """The DSN to use (None: start or reuse the embedded server) and where the choice came from."""

    dsn: str | None
    origin: str  # "--dsn", "TXNLAB_DSN", "DATABASE_URL" or "embedded"


def choose_server(cli_dsn: str | None = None, environ: dict[str, str] | None = None) -> ServerChoice:
    env = os.environ if environ is None else environ
    if cli_dsn:
        return ServerChoice(cli_dsn, "--dsn")
    for variable in ("TXNLAB_DSN", "DATABASE_URL"):
        if env.get(variable):
            return ServerChoice(env[variable], variable)
    return ServerChoice(None, "embedded")


def resolve_dsn(choice: ServerChoice) -> str:
    """The DSN of a server that is up: the chosen one, or the embedded server, started if needed."""
    if choice.dsn is not None:
        try:
            psycopg2.extensions.parse_dsn(choice.dsn)
        except (psycopg2.ProgrammingError, UnicodeEncodeError) as exc:
            raise UsageError(f"the DSN from {choice.origin} is not valid: {dsn_problem(exc)}") from None
        return choice.dsn
    from txnlab.server.embedded import EmbeddedServer

    return EmbeddedServer().ensure_running()
