"""JSON says which connection `transaction_status` and `driver_status` describe: the
session's own (`status_of`, a label of `server`), also when a Python step worked on a pool's
connection, whose state is the `server` entry labelled "other connection"; the text view
says whose the driver's view is when another connection is in view."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("plain_output")


def test_a_pool_steps_status_names_the_connection_it_describes(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", "asyncpg-pool-release-reset", "--level", "rc", "--format", "json")
    events = {e["step"]: e for e in json.loads(out)["runs"][0]["events"]}
    forget = events["app_forget"]
    views = {view["label"]: view["state"] for view in forget["server"]}
    assert forget["status_of"] == "this session"
    assert views[forget["status_of"]] == forget["transaction_status"] == "idle"
    assert views["other connection"] == "idle in transaction"


def test_the_text_view_says_the_drivers_view_is_the_sessions_own(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", "asyncpg-pool-release-reset", "--level", "rc")
    assert "driver, this session: is_in_transaction() = False" in " ".join(out.replace("│", " ").split())
