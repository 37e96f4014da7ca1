"""`txnlab list` and `txnlab show`: read the catalogue, no database needed."""

from __future__ import annotations

import textwrap

import click
from tabulate import tabulate

from txnlab.scenario import Catalogue, Scenario
from txnlab.scenario.model import Expectation


@click.command("list")
@click.option("--tag", help="Only scenarios with this tag (e.g. blog, lost-update, locks).")
def list_command(tag: str | None) -> None:
    """List the scenarios in the catalogue."""
    catalogue = Catalogue()
    scenarios = catalogue.with_tag(tag) if tag else list(catalogue.scenarios.values())
    rows = [[s.name, s.title, ", ".join(s.tags)] for s in scenarios]
    click.echo(tabulate(rows, headers=["name", "title", "tags"], tablefmt="simple"))


@click.command("show")
@click.argument("name")
def show_command(name: str) -> None:
    """Explain a scenario: what it does and what PostgreSQL will do, without running it."""
    click.echo(describe(Catalogue().resolve(name)))


def describe(scenario: Scenario) -> str:
    lines = [click.style(f"{scenario.name}: {scenario.title}", bold=True), ""]
    lines += textwrap.wrap(" ".join(scenario.summary.split()), 88)
    if scenario.setup:
        lines += ["", "Setup:"] + [textwrap.indent(s, "  ") for s in scenario.setup]
    lines += ["", "Sessions:"]
    for session in scenario.sessions:
        style = "autocommit, statements as written" if session.autocommit else "psycopg2 default: implicit transactions"
        extra = [f"level pinned to {session.level.value}"] if session.level else []
        extra += ["read only"] if session.read_only else []
        extra += ["deferrable"] if session.deferrable else []
        lines.append(f"  {session.name} ({', '.join([style, *extra])})")
        lines += [f"    setup: {s}" for s in session.setup]
    lines += ["", "Steps:"]
    for number, step_name in enumerate(scenario.default_permutation, 1):
        step = scenario.steps[step_name]
        lines.append(f"  {number:>2}. {step.session:<10} {step.name:<18} {' '.join(step.sql.split())}")
        if step.narration:
            lines += textwrap.wrap(step.narration, 80, initial_indent=" " * 8, subsequent_indent=" " * 8)
    if scenario.invariants:
        lines += ["", "Invariants (checked on the final state):"]
        lines += [f"  {name}: {sql}" for name, sql in scenario.invariants.items()]
    lines += ["", "What PostgreSQL does:"]
    for level, expectation in scenario.expectations.items():
        lines.append(f"  {level.value}: {expectation_phrase(scenario, expectation)}")
    if scenario.references:
        lines += ["", "References:"] + [f"  {ref}" for ref in scenario.references]
    return "\n".join(lines)


def expectation_phrase(scenario: Scenario, expectation: Expectation) -> str:
    parts = []
    if expectation.blocked:
        parts.append("blocks: " + ", ".join(sorted(expectation.blocked)))
    if expectation.errors:
        parts.append("fails: " + ", ".join(f"{s} ({c})" for s, c in expectation.errors.items()))
    if expectation.anomaly is not None and scenario.anomaly:
        parts.append(f"{scenario.anomaly.name} {'happens' if expectation.anomaly else 'is prevented'}")
    if expectation.note:
        parts.append(expectation.note)
    return "; ".join(parts) or "every step succeeds without waiting"
