"""asyncpg has no autocommit switch: outside transaction() every call is its own transaction, and one execute() of several statements is one.

The application's steps are asyncpg code on the session's own connection, awaited on its
event loop; the session is `autocommit: true`, so txnlab adds nothing around them.
"""

from __future__ import annotations

import asyncpg

DEPOSIT = "UPDATE accounts SET balance = balance + 50 WHERE id = 1"
OVERDRAW = "UPDATE accounts SET balance = balance - 500 WHERE id = 1"
BALANCE = "SELECT balance FROM accounts WHERE id = 1"
FEE_AND_OVERDRAW = (
    "UPDATE accounts SET balance = balance - 1 WHERE id = 1; "
    "UPDATE accounts SET balance = balance - 500 WHERE id = 1"
)
TRANSFER = "UPDATE accounts SET balance = balance + $2 WHERE id = $1"

SCENARIO = {
    "name": "asyncpg-always-autocommit",
    "title": "asyncpg is always in autocommit: each call outside transaction() commits by itself; several statements in one execute() are one transaction",
    "summary": (
        "psycopg2 needs conn.autocommit = True for what asyncpg always does: outside "
        "conn.transaction() there is no switch and no BEGIN. A deposit is committed the moment "
        "conn.execute() returns, so a teller sees it at once, and the session is idle. A "
        "failing statement undoes only itself. Two surprises sit next to each other. "
        "conn.execute() without arguments sends its text as one simple Query message, so two "
        "statements in one string run as one implicit transaction: when the second fails, the "
        "first (a fee) is undone with it. conn.executemany() is atomic too (since asyncpg "
        "0.22), with no BEGIN either: one Parse, then a Bind and Execute per argument set "
        "(the tap records the second as the statement run again), and a single Sync at the "
        "end, so the server runs the batch as one implicit transaction: the second set fails "
        "and the first set's deposit to alice is undone. Every statement is "
        "its own transaction at the run's level, so every level behaves the same."
    ),
    "tags": ["asyncpg", "driver", "autocommit", "python"],
    "references": [
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.execute",
        "https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.executemany",
        "https://magicstack.github.io/asyncpg/current/api/index.html#transactions",
        "https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-MULTI-STATEMENT",
    ],
    "capture": True,
    "setup": (
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL CHECK (balance >= 0));\n"
        "INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 250);"
    ),
    "sessions": {
        "app": {"driver": "asyncpg", "autocommit": True},
        "teller": {"autocommit": True},
    },
    "steps": [
        {"name": "app_deposit", "session": "app", "sql": f'await conn.execute("{DEPOSIT}")',
         "narration": "No BEGIN: the deposit is committed when execute() returns."},
        {"name": "teller_read", "session": "teller", "sql": BALANCE, "narration": "The teller already sees 150."},
        {"name": "app_overdraw", "session": "app", "sql": f'await conn.execute("{OVERDRAW}")',
         "narration": "The CHECK fails (23514); only this statement is undone."},
        {"name": "app_balance", "session": "app", "sql": f'await conn.fetchval("{BALANCE}")',
         "narration": "No 25P02: there was no transaction to poison."},
        {"name": "app_two_statements", "session": "app", "sql": f'await conn.execute("{FEE_AND_OVERDRAW}")',
         "narration": "One Query message with two statements: the server runs them as one transaction, so the "
                      "failing second one takes the fee with it."},
        {"name": "teller_after_two", "session": "teller", "sql": BALANCE, "narration": "Still 150: no fee."},
        {"name": "app_executemany", "session": "app",
         "sql": f'await conn.executemany("{TRANSFER}", [(1, 500), (2, -500)])',
         "narration": "Two argument sets, one Sync: alice's +500 runs, bob's -500 fails the CHECK, and the "
                      "server undoes both."},
        {"name": "teller_at_end", "session": "teller", "sql": "SELECT id, balance FROM accounts ORDER BY id"},
    ],
    "expect": {
        "all": {
            "errors": {"app_overdraw": "23514", "app_two_statements": "23514", "app_executemany": "23514"},
            "rows": {
                "teller_read": [[150]],
                "app_balance": [[150]],
                "teller_after_two": [[150]],
                "teller_at_end": [[1, 150], [2, 250]],
            },
            "sent": {
                "app_deposit": [DEPOSIT],
                "app_overdraw": [OVERDRAW],
                "app_balance": [BALANCE],
                "app_two_statements": [FEE_AND_OVERDRAW],
                "app_executemany": [TRANSFER, TRANSFER],
            },
            "state": {
                "app_deposit": "idle",
                "app_overdraw": "idle",
                "app_two_statements": "idle",
                "app_executemany": "idle",
            },
            "note": "the same at every level: each call (each Query message, each batch up to its Sync) is "
                    "one transaction at the run's level, and nothing stays open",
        },
    },
}


def play(run) -> None:  # type: ignore[no-untyped-def]
    def execute(sql: str):  # type: ignore[no-untyped-def]
        async def step(conn: asyncpg.Connection) -> None:
            await conn.execute(sql)
        return step

    async def balance(conn: asyncpg.Connection) -> object:
        return await conn.fetchval(BALANCE)

    async def executemany(conn: asyncpg.Connection) -> None:
        await conn.executemany(TRANSFER, [(1, 500), (2, -500)])

    run.step("app_deposit", execute(DEPOSIT))
    run.step("teller_read")
    run.step("app_overdraw", execute(OVERDRAW))
    run.step("app_balance", balance)
    run.step("app_two_statements", execute(FEE_AND_OVERDRAW))
    run.step("teller_after_two")
    run.step("app_executemany", executemany)
    run.step("teller_at_end")
