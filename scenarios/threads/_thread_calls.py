"""Mechanics shared by the threads-* scenarios that run Python code as their steps.

Those scenarios declare each step in SCENARIO["steps"] (its session and a one-line
description of the code, shown in the timeline) and run it with `run.call`, which runs
a function on that session's thread. `declared_caller` looks the step up so that
`play` only names the step and the function. `transaction_status` reads psycopg2's
view of a connection, for steps that report the state of a connection other than their
session's own (the timeline's [status] under a step is always the session's own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import psycopg2.extensions

from txnlab.timeline import TRANSACTION_STATUS  # conn.info.transaction_status, in words

Function = Callable[[psycopg2.extensions.connection], Any]
Caller = Callable[..., None]



def transaction_status(conn: psycopg2.extensions.connection) -> str:
    """psycopg2's view of the connection: idle, active, in transaction, in failed transaction or unknown."""
    return TRANSACTION_STATUS[conn.info.transaction_status]


def declared_caller(run: Any, scenario: Mapping[str, Any],
                    on: psycopg2.extensions.connection | None = None) -> Caller:
    """`call(name, function, on=...)`: run `function` as the declared step `name`, on the
    thread of the step's session, with the connection `on` (default: the one given here,
    else the session's own)."""
    def call(name: str, function: Function, on: psycopg2.extensions.connection | None = on) -> None:
        run.step(name, function, on=on)

    return call
