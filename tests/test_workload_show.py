"""`txnlab show` describes a scenario's workload (what `txnlab bench` would run) without
running it: its data, its transaction as written, what it counts and checks."""

from __future__ import annotations

import pytest

from txnlab.scenario import Catalogue

pytestmark = pytest.mark.usefixtures("plain_output")


def _workload_part(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Workload (txnlab bench "))
    end = lines.index("What PostgreSQL does:", start)
    return lines[start:end]


def test_show_gives_a_script_workload_its_setup_transaction_measures_and_invariants(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("show", "atm-lost-update")
    assert code == 0
    part = _workload_part(out)
    assert part[0] == "Workload (txnlab bench atm-lost-update):"
    assert "  Setup (after the scenario's):" in part
    assert "    ALTER TABLE accounts ADD COLUMN updates int NOT NULL DEFAULT 0" in part
    script = part.index("  Transaction (a pgbench script, the same for txnlab and pgbench):")
    assert part[script + 1:script + 4] == [
        "    \\set amount random(1, 100)", "    BEGIN;", "    SELECT balance, updates FROM accounts WHERE id = 1 \\gset",
    ]
    assert "    lost_updates: SELECT (SELECT count(*) FROM ledger) - updates FROM accounts WHERE id = 1" in part
    assert any(line.startswith("    balance_matches_ledger: SELECT balance = 100") for line in part)  # the default


def test_show_names_a_python_workloads_function_and_where_it_is(cli, catalogue: Catalogue) -> None:  # type: ignore[no-untyped-def]
    scenario = catalogue.resolve("atm-retry-on-serialization-failure")
    line = next(n for n, text in enumerate(scenario.source.read_text().splitlines(), 1)
                if text.startswith("def update_balance("))
    code, out, _ = cli("show", scenario.name)
    assert code == 0
    said = " ".join(" ".join(_workload_part(out)).split())
    assert f"Transaction: the Python function update_balance(conn, rng) at {scenario.source}:{line}" in said


def test_show_says_nothing_of_a_workload_a_scenario_does_not_have(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("show", "dirty-read")
    assert code == 0 and "Workload" not in out
