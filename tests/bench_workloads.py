"""Workloads for the bench engine's tests, built as Scenario objects directly (the `workload:`
section of scenario files is read by the format's own module)."""

from __future__ import annotations

from pathlib import Path

from txnlab.scenario.model import Scenario, SessionSpec, Step, Workload

BANK_TRANSFER_SETUP = (
    "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);"
    "CREATE TABLE transfers (id bigserial PRIMARY KEY, source int, target int, amount bigint);",
)
BANK_TRANSFER_DATA = ("INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 10) g",)
# Two distinct random accounts of ten, the lower id updated first: no deadlocks.
BANK_TRANSFER_SCRIPT = """\
\\set a random(1, 10)
\\set b 1 + (:a + random(0, 8)) % 10
\\set amount random(1, 100)
\\set low least(:a, :b)
\\set high greatest(:a, :b)
BEGIN;
UPDATE accounts SET balance = balance + CASE id WHEN :a THEN -:amount ELSE :amount END WHERE id = :low;
UPDATE accounts SET balance = balance + CASE id WHEN :a THEN -:amount ELSE :amount END WHERE id = :high;
INSERT INTO transfers (source, target, amount) VALUES (:a, :b, :amount);
COMMIT;
"""

ATM_SETUP = (
    "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, updates int NOT NULL);"
    "CREATE TABLE ledger (id bigserial PRIMARY KEY, amount int NOT NULL);",
)
ATM_DATA = ("INSERT INTO accounts VALUES (1, 0, 0)",)
# The 2017 blog's read-then-write on one hot row: at READ COMMITTED two clients read the same
# balance and the second write overwrites the first.
ATM_SCRIPT = """\
\\set amount random(1, 100)
BEGIN;
SELECT balance, updates FROM accounts WHERE id = 1 \\gset
UPDATE accounts SET balance = :balance + :amount, updates = :updates + 1 WHERE id = 1;
INSERT INTO ledger (amount) VALUES (:amount);
COMMIT;
"""
ATM_MEASURES = {
    "lost_updates": "SELECT (SELECT count(*) FROM ledger) - (SELECT updates FROM accounts WHERE id = 1)",
}
ATM_INVARIANTS = {
    "no_lost_update": "SELECT (SELECT count(*) FROM ledger) = (SELECT updates FROM accounts WHERE id = 1)",
    "balance_matches_ledger": "SELECT (SELECT coalesce(sum(amount), 0) FROM ledger) = (SELECT balance FROM accounts WHERE id = 1)",
}


def workload_scenario(
    name: str, setup: tuple[str, ...], workload: Workload, source: Path | None = None,
    invariants: dict[str, str] | None = None,
) -> Scenario:
    """A scenario with `workload` and the minimal session/step every scenario has."""
    return Scenario(
        name=name, title=name, summary=name, source=source or Path(f"{name}.yaml"),
        sessions=(SessionSpec("a"),), steps={"one": Step("one", "a", "SELECT 1")}, permutations=(("one",),),
        setup=setup, invariants=invariants or {}, workload=workload,
    )


def bank_transfer() -> Scenario:
    return workload_scenario(
        "bank-transfer", BANK_TRANSFER_SETUP,
        Workload(script=BANK_TRANSFER_SCRIPT, setup=BANK_TRANSFER_DATA, invariants={
            "money_kept": "SELECT sum(balance) = 10000 FROM accounts",
        }),
    )


def atm(script: str = ATM_SCRIPT) -> Scenario:
    return workload_scenario(
        "atm-lost-update", ATM_SETUP,
        Workload(script=script, setup=ATM_DATA, measures=ATM_MEASURES, invariants=ATM_INVARIANTS),
    )
