"""`txnlab new` and `txnlab edit`: write scenarios in $EDITOR, validated before they are saved.

Like `git commit` or `crontab -e`: the editor works on a temporary copy; the scenario
file is written only when the edit is valid; an abandoned edit changes nothing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from txnlab.cli.editor import edit
from txnlab.errors import ScenarioError, UsageError
from txnlab.scenario import Catalogue
from txnlab.scenario.validate import NAME, build_scenario
from txnlab.scenario.yaml_source import read_yaml

TEMPLATE = """\
# A txnlab scenario; the format is in docs/scenario-format.md.
# Save and quit to validate it; quit without saving to abandon.
name: {name}
title: What this scenario shows, in one line
summary: |
  What a workshop attendee should read first: the situation, and what PostgreSQL
  does about it at each isolation level.
references:
  - https://www.postgresql.org/docs/current/transaction-iso.html
setup: |
  CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
  INSERT INTO accounts VALUES (1, 100);
sessions:
  alice: {{}}
  bob: {{}}
steps:
  - name: alice_read
    session: alice
    sql: SELECT balance FROM accounts WHERE id = 1
    narration: Alice reads the balance; psycopg2 opens a transaction.
  - name: bob_write
    session: bob
    sql: UPDATE accounts SET balance = 50 WHERE id = 1
  - name: bob_commit
    session: bob
    sql: COMMIT
  - name: alice_read_again
    session: alice
    sql: SELECT balance FROM accounts WHERE id = 1
  - name: alice_commit
    session: alice
    sql: COMMIT
expect:
  ru, rc:
    rows: {{alice_read: [[100]], alice_read_again: [[50]]}}
    note: each statement sees what was committed before it started
  rr, ser:
    rows: {{alice_read: [[100]], alice_read_again: [[100]]}}
    note: the transaction keeps the snapshot of its first statement
"""


def edit_until_valid(text: str, target: Path) -> int:
    """Open the editor until the scenario validates; the exit code: 0 saved or abandoned,
    2 an invalid edit was discarded. `target` is written only with a valid scenario."""
    while True:
        edited = edit(text, extension=".yaml")
        if edited is None:
            click.echo(f"No changes saved; {target} is unchanged.")
            return 0
        try:
            build_scenario(read_yaml(target, edited), target)
        except ScenarioError as exc:
            click.echo(click.style(f"Not valid: {exc.problem}" + (f" (line {exc.line})" if exc.line else ""), fg="red"))
            if not click.confirm("Edit again?", default=True):
                click.echo(f"Discarded; {target} is unchanged.")
                return 2
            text = edited
            continue
        _replace(target, edited)
        click.echo(f"Saved {target}.")
        return 0


def _replace(target: Path, text: str) -> None:
    """Write atomically: a crash mid-write must not leave half a scenario behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, target)


def _default_directory() -> Path:
    here = Path.cwd() / "scenarios"
    return here if here.is_dir() else Path.cwd()


@click.command("new")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where to save it (default: ./scenarios if it exists, else the current directory).")
def new_command(name: str, directory: Path | None) -> int:
    """Write a new scenario in $EDITOR, starting from a template."""
    if not NAME.match(name):
        raise UsageError(f"scenario name {name!r} must be lowercase letters, digits and dashes")
    target = (directory or _default_directory()) / f"{name}.yaml"
    if target.exists():
        raise UsageError(f"{target} exists already; use `txnlab edit {target}`")
    return edit_until_valid(TEMPLATE.format(name=name), target)


@click.command("edit")
@click.argument("name")
def edit_command(name: str) -> int:
    """Edit a scenario (catalogue name or file) in $EDITOR; saved only if it validates."""
    target = Catalogue().resolve(name).source
    if target.suffix not in (".yaml", ".yml"):
        raise UsageError(f"{target} is a Python scenario; edit it in your editor directly")
    if not os.access(target, os.W_OK):
        raise UsageError(f"{target} is not writable (an installed catalogue?); copy it and edit the copy")
    return edit_until_valid(target.read_text(encoding="utf-8"), target)
