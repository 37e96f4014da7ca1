"""Which server a project's tests run on: the same selection as the CLI's, or the project's
own pytest-postgresql server when its pytest ini names that fixture (`txnlab_server_fixture`).
"""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
import pytest

from txnlab.errors import UsageError
from txnlab.server.selection import ServerChoice, choose_server, resolve_dsn

DSN_OPTION = "--txnlab-dsn"
SERVER_FIXTURE_INI = "txnlab_server_fixture"


def chosen_server(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """The DSN of a running server and whether it is txnlab's embedded one, in this order:
    `--txnlab-dsn`; the pytest-postgresql fixture named by the ini's `txnlab_server_fixture`
    (`postgresql_proc`, `postgresql_noproc`, or one a factory made); TXNLAB_DSN; DATABASE_URL;
    the embedded server, started if needed. Raises UsageError (one line) for an invalid DSN
    or a fixture that is not a pytest-postgresql server."""
    config = request.config
    option = config.getoption(DSN_OPTION)
    fixture = config.getini(SERVER_FIXTURE_INI)
    if not option and fixture:
        try:
            executor = request.getfixturevalue(fixture)
        except pytest.FixtureLookupError:
            raise UsageError(f"{SERVER_FIXTURE_INI} = {fixture}: there is no fixture of that name "
                             "(pytest-postgresql's are postgresql_proc and postgresql_noproc)") from None
        return executor_dsn(executor, fixture), False
    choice = ServerChoice(option, DSN_OPTION) if option else choose_server()
    return resolve_dsn(choice), choice.origin == "embedded"


def executor_dsn(executor: Any, fixture: str) -> str:
    """A libpq DSN for a pytest-postgresql process fixture's server (its host, port, user and
    password; its maintenance database, where txnlab creates its scratch database)."""
    try:
        host, port, user = executor.host, executor.port, executor.user
    except AttributeError:
        raise UsageError(f"{SERVER_FIXTURE_INI} = {fixture}: that fixture is not a pytest-postgresql "
                         f"server (postgresql_proc, postgresql_noproc): it gave {type(executor).__name__}") from None
    return psycopg2.extensions.make_dsn(
        host=host, port=port, user=user, password=getattr(executor, "password", None) or None,
        dbname=getattr(executor, "maintenance_dbname", None) or "postgres",
    )
