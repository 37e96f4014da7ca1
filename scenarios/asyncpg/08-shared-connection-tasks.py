"""Two asyncio tasks on one asyncpg connection: at the same moment one is refused; one after the other they share a transaction.

Both tasks run on the app session's event loop, inside one step (one coroutine that gathers
them), on the session's own connection. asyncio.Event objects fix the order in which the
second pair of tasks use it, so every run interleaves them the same way.
"""

from __future__ import annotations

import asyncio

import asyncpg

from _asyncpg_app import in_transaction, qualified_name

SLEEP = "SELECT pg_sleep(0.2)"
DEBIT = "INSERT INTO ledger VALUES ('checking', -100)"
AUDIT = "INSERT INTO audit_log VALUES ('task_b', 'report sent')"

SCENARIO = {
    "name": "asyncpg-shared-connection-tasks",
    "title": "asyncpg: two tasks on one connection: run at once, the second is refused; interleaved, one task's rollback takes the other's work",
    "summary": (
        "asyncpg connections are not for concurrent use. Two tasks gathered on one connection "
        "each run SELECT pg_sleep(0.2): the first is sent, the second is refused at once on the "
        "client with InterfaceError (\"cannot perform operation: another operation is in "
        "progress\") and never reaches the server; the captured traffic has one SELECT. "
        "Unlike psycopg2 and psycopg 3, which make a second thread wait its turn, asyncpg "
        "fails fast. The quieter danger is tasks that take turns. Task A opens `async with "
        "conn.transaction():`, writes a debit and awaits a payment service; while it waits, "
        "task B writes an audit line on the same connection. No error: B's INSERT runs inside "
        "A's transaction (is_in_transaction() is True for B, which began nothing). The payment "
        "is declined, A's block rolls back, and B's audit line goes with it. One connection "
        "per task (a pool's acquire()) avoids both. Nothing here depends on the isolation level."
    ),
    "tags": ["asyncpg", "driver", "python", "concurrency", "asyncio"],
    "references": [
        "https://magicstack.github.io/asyncpg/current/api/index.html#connection-pools",
        "https://docs.python.org/3/library/asyncio-task.html#asyncio.gather",
        "https://magicstack.github.io/asyncpg/current/api/index.html#transactions",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE ledger (account text NOT NULL, amount int NOT NULL);\n"
        "CREATE TABLE audit_log (who text NOT NULL, what text NOT NULL);"
    ),
    "sessions": {
        "app": {"driver": "asyncpg", "autocommit": True},
        "teller": {"autocommit": True},
    },
    "steps": [
        {"name": "app_at_once", "session": "app",
         "sql": f'await asyncio.gather(conn.execute("{SLEEP}"), conn.execute("{SLEEP}"), return_exceptions=True)',
         "narration": "The first task's SELECT is sent; the second is refused by asyncpg before anything is sent."},
        {"name": "app_taking_turns", "session": "app",
         "sql": f'task A: async with conn.transaction(): "{DEBIT}"; await payment(); raise PaymentDeclined | '
                f'task B, meanwhile: await conn.execute("{AUDIT}")',
         "narration": "B's INSERT lands in A's open transaction; A's rollback undoes it too."},
        {"name": "teller_look", "session": "teller",
         "sql": "SELECT (SELECT count(*) FROM ledger) AS ledger_rows, (SELECT count(*) FROM audit_log) AS audit_rows",
         "narration": "Neither the debit nor the audit line was committed."},
    ],
    "invariants": {"audit_line_kept": "SELECT count(*) = 1 FROM audit_log"},
    "expect": {
        "all": {
            "rows": {
                "app_at_once": [[{
                    "task 1": "SELECT 1",
                    "task 2": "asyncpg.exceptions._base.InterfaceError: cannot perform operation: another "
                              "operation is in progress",
                }]],
                "app_taking_turns": [[{
                    "task A": "PaymentDeclined",
                    "task B": "INSERT 0 1",
                    "is_in_transaction() seen by task B": True,
                }]],
                "teller_look": [[0, 0]],
            },
            "sent": {
                "app_at_once": [SLEEP],
                "app_taking_turns": ["BEGIN;", DEBIT, AUDIT, "ROLLBACK;"],
            },
            "state": {"app_at_once": "idle", "app_taking_turns": "idle"},
            "invariants": {"audit_line_kept": False},
            "note": "the same at every level: the refusal is asyncpg's own, and both tasks' writes belong to "
                    "one transaction whatever its level",
        },
    },
}


class PaymentDeclined(Exception):
    """The payment service said no: task A abandons its transaction."""


def play(run) -> None:  # type: ignore[no-untyped-def]
    async def at_once(conn: asyncpg.Connection) -> dict[str, object]:
        results = await asyncio.gather(conn.execute(SLEEP), conn.execute(SLEEP), return_exceptions=True)
        return {f"task {n}": f"{qualified_name(r)}: {r}" if isinstance(r, BaseException) else r
                for n, r in enumerate(results, 1)}

    async def taking_turns(conn: asyncpg.Connection) -> dict[str, object]:
        debit_written, audit_written = asyncio.Event(), asyncio.Event()
        seen: dict[str, object] = {}

        async def task_a() -> None:
            try:
                async with conn.transaction():
                    await conn.execute(DEBIT)
                    debit_written.set()
                    await audit_written.wait()  # stands for: await the payment service
                    raise PaymentDeclined("card refused")
            except PaymentDeclined as exc:
                seen["task A"] = type(exc).__name__

        async def task_b() -> None:
            await debit_written.wait()
            seen["task B"] = await conn.execute(AUDIT)
            seen["is_in_transaction() seen by task B"] = in_transaction(conn)
            audit_written.set()

        await asyncio.gather(task_a(), task_b())
        return {key: seen[key] for key in ("task A", "task B", "is_in_transaction() seen by task B")}

    run.step("app_at_once", at_once)
    run.step("app_taking_turns", taking_turns)
    run.step("teller_look")
