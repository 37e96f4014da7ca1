"""`txnlab new` and `txnlab edit`: write scenarios in $EDITOR, validated before they are saved.

Like `git commit` or `crontab -e`: the editor works on a temporary copy; the scenario
file is written only when the edit is valid; an abandoned edit changes nothing. An edit
that does not validate and that the user stops retrying is kept as a draft beside the
target (NAME.draft.yaml), and the next `new` or `edit` of NAME resumes from it.

Scenarios are saved in a folder the user owns (`--dir`, ./scenarios, or the user data
folder; see txnlab.scenario.catalogue), never in txnlab's installed catalogue: editing a
catalogue scenario edits a copy, which then replaces the catalogue's for this user.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from txnlab.cli.editor import edit
from txnlab.cli.options import require_terminal, scenario_dir_option, user_catalogue
from txnlab.errors import ScenarioError, UsageError
from txnlab.scenario.catalogue import draft_path, writable_directory
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
    """Open the editor until the scenario validates, then write `target` (exit code 0).

    Quitting without saving changes nothing (0). Declining to fix an invalid edit keeps
    it as a draft beside `target` and raises UsageError (exit 2). A draft left by an
    earlier session is where the editor starts; it is removed once the scenario is saved.
    """
    draft = draft_path(target)
    if draft.is_file():
        click.echo(f"Resuming your draft {draft}.")
        text = draft.read_text(encoding="utf-8")
    while True:
        edited = edit(text, extension=".yaml")
        if edited is None:
            kept = f" Your draft is still in {draft}." if draft.is_file() else ""
            click.echo(f"No changes saved; {target} is unchanged.{kept}")
            return 0
        try:
            build_scenario(read_yaml(target, edited), target)
        except ScenarioError as exc:
            click.echo(click.style(f"Not valid: {exc.problem}" + (f" (line {exc.line})" if exc.line else ""), fg="red"))
            if not click.confirm("Edit again?", default=True):
                _replace(draft, edited)
                raise UsageError(f"{target} is unchanged: the edit is not valid; it is kept in {draft}") from None
            text = edited
            continue
        _replace(target, edited)
        draft.unlink(missing_ok=True)
        click.echo(f"Saved {target}.")
        return 0


def _replace(target: Path, text: str) -> None:
    """Write atomically: a crash mid-write must not leave half a scenario behind."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, target)


@click.command("new")
@click.argument("name")
@scenario_dir_option
def new_command(name: str, directory: Path | None) -> int:
    """Write a new scenario in $EDITOR, starting from a template.

    It is saved in --dir, else ./scenarios if it exists, else your user data folder
    (`txnlab list` shows where); `txnlab run NAME` and `txnlab edit NAME` find it.
    """
    if not NAME.match(name):
        raise UsageError(f"scenario name {name!r} must be lowercase letters, digits and dashes")
    require_terminal("txnlab new")
    target = writable_directory(directory) / f"{name}.yaml"
    if target.exists():
        raise UsageError(f"{target} exists already; use `txnlab edit {name}`")
    existing = user_catalogue(directory).scenarios.get(name)
    if existing is not None:
        click.echo(f"A scenario named {name} exists in {existing.source}; yours will replace it.")
    return edit_until_valid(TEMPLATE.format(name=name), target)


@click.command("edit")
@click.argument("name")
@scenario_dir_option
def edit_command(name: str, directory: Path | None) -> int:
    """Edit a scenario (a name or a file) in $EDITOR; saved only if it validates.

    A scenario of txnlab's catalogue is never changed in place: the edit is saved as a
    copy in --dir, ./scenarios or your user data folder, and replaces the catalogue's.
    """
    require_terminal("txnlab edit")
    catalogue = user_catalogue(directory)
    source = catalogue.resolve(name).source
    target, writable = source, writable_directory(directory)
    installed = (  # txnlab's own catalogue, outside the folder the user saves in (site-packages, say)
        catalogue.origin.get(name) == catalogue.directory and not source.resolve().is_relative_to(writable.resolve())
    )
    if source.suffix not in (".yaml", ".yml"):
        where = f"copy it into {writable} and edit the copy, then run it by its path" if installed else "edit it in your editor"
        raise UsageError(f"{source} is a Python scenario; {where}")
    if installed:
        target = writable / source.name
        click.echo(f"{name} is in txnlab's catalogue; your edit is saved as {target}, which replaces it.")
    elif not os.access(source, os.W_OK):
        raise UsageError(f"{source} is not writable; copy it and edit the copy")
    return edit_until_valid(source.read_text(encoding="utf-8"), target)
