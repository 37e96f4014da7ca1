"""Scenarios a user writes live in a folder the user owns (--dir, ./scenarios, or the user
data folder), and every command finds them; txnlab's installed catalogue is never written.
Through the real CLI, on a real terminal (a pty) where it asks questions, on the real server."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from terminal import terminal_stdin
from txnlab.scenario import Catalogue


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder without scenarios/ as the current directory, and a private user data folder."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


def editor(tmp_path: Path, old: str, new: str) -> str:
    """An $EDITOR that replaces `old` with `new` in the file it is given."""
    script = tmp_path / "replace.py"
    script.write_text(textwrap.dedent(f"""
        import pathlib, sys
        path = pathlib.Path(sys.argv[-1])
        path.write_text(path.read_text().replace({old!r}, {new!r}))
    """))
    return f"{sys.executable} {script}"


def interactive(cli, monkeypatch: pytest.MonkeyPatch, *args: str, answers: str = ""):  # type: ignore[no-untyped-def]
    with terminal_stdin(answers) as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        return cli(*args)


def test_a_new_scenario_is_saved_in_the_user_folder_and_run_show_list_and_edit_find_it(cli, home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EDITOR", editor(home, "What this scenario shows, in one line", "Mine"))
    code, out, _ = interactive(cli, monkeypatch, "new", "my-first")
    saved = home / "data" / "txnlab" / "scenarios" / "my-first.yaml"
    assert code == 0 and f"Saved {saved}." in out
    code, out, _ = cli("run", "my-first", "--level", "rc")
    assert code == 0 and "my-first at READ COMMITTED" in out
    code, out, _ = cli("show", "my-first")
    assert code == 0 and out.startswith("my-first: Mine")
    code, out, _ = cli("list")
    assert code == 0
    assert any(line.startswith("my-first") and line.rstrip().endswith("yours") for line in out.splitlines())
    assert f"yours: {saved.parent}" in out
    monkeypatch.setenv("EDITOR", editor(home, "title: Mine", "title: Mine, edited"))
    code, out, _ = interactive(cli, monkeypatch, "edit", "my-first")
    assert code == 0 and f"Saved {saved}." in out and "title: Mine, edited" in saved.read_text()


def test_a_new_scenario_goes_to_the_projects_scenarios_folder_when_there_is_one(cli, home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (home / "project" / "scenarios").mkdir()
    monkeypatch.setenv("EDITOR", editor(home, "What this scenario shows, in one line", "In the project"))
    code, out, _ = interactive(cli, monkeypatch, "new", "in-project")
    assert code == 0 and (home / "project" / "scenarios" / "in-project.yaml").is_file()
    code, out, _ = cli("matrix", "in-project", "--level", "rc")
    assert code == 0 and "in-project" in out


def test_editing_a_catalogue_scenario_edits_a_copy_that_then_replaces_it(cli, home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    installed = Catalogue().resolve("dirty-read").source
    before = installed.read_bytes()
    monkeypatch.setenv("EDITOR", editor(home, "tags: [", "tags: [mine, "))
    code, out, _ = interactive(cli, monkeypatch, "edit", "dirty-read")
    copy = home / "data" / "txnlab" / "scenarios" / "dirty-read.yaml"
    assert code == 0 and f"your edit is saved as {copy}" in out
    assert installed.read_bytes() == before  # the catalogue is never written
    assert "mine" in copy.read_text()
    code, out, _ = cli("list", "--tag", "mine")
    assert code == 0 and "yours (replaces catalogue)" in out
    code, out, _ = cli("run", "dirty-read", "--level", "rc", "--format", "json")
    assert code == 0 and '"scenario": "dirty-read"' in out


def test_a_scenario_in_dir_wins_over_the_catalogue_and_the_user_folder(cli, home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    text = Catalogue().resolve("dirty-read").source.read_text()
    (chosen / "dirty-read.yaml").write_text(text.replace("title: ", "title: Chosen copy, ", 1))
    code, out, _ = cli("show", "dirty-read", "--dir", str(chosen))
    assert code == 0 and out.startswith("dirty-read: Chosen copy, ")
    code, out, _ = cli("show", "dirty-read")
    assert code == 0 and "Chosen copy" not in out


def test_giving_up_on_an_invalid_edit_keeps_a_draft_that_the_next_edit_resumes(cli, home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EDITOR", editor(home, "session: bob", "session: carol"))
    code, out, err = interactive(cli, monkeypatch, "new", "half-done", answers="n\n")
    folder = home / "data" / "txnlab" / "scenarios"
    draft = folder / "half-done.draft.yaml"
    assert code == 2 and "Not valid: step uses unknown session 'carol'" in out
    assert err == f"txnlab: error: {folder / 'half-done.yaml'} is unchanged: the edit is not valid; it is kept in {draft}\n"
    assert "session: carol" in draft.read_text() and not (folder / "half-done.yaml").exists()
    code, out, _ = cli("list")
    assert "yours" not in out  # a draft is not a scenario
    monkeypatch.setenv("EDITOR", editor(home, "session: carol", "session: bob"))
    code, out, _ = interactive(cli, monkeypatch, "new", "half-done")
    assert code == 0 and f"Resuming your draft {draft}." in out
    assert (folder / "half-done.yaml").is_file() and not draft.exists()


def test_python_files_in_a_users_folder_are_not_imported_to_find_names(cli, home) -> None:  # type: ignore[no-untyped-def]
    scenarios = home / "project" / "scenarios"
    scenarios.mkdir()
    (scenarios / "not_txnlab.py").write_text("raise SystemExit('imported')\n")
    code, out, _ = cli("list")
    assert code == 0 and "atm-lost-update" in out


def test_dir_that_does_not_exist_is_one_line_and_exit_2(cli, home) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("list", "--dir", "nowhere")
    assert code == 2 and err == "txnlab: error: --dir nowhere: no such directory\n"


def test_in_txnlabs_own_checkout_scenarios_is_the_catalogue_not_the_users_folder(cli, home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A new user ran `txnlab new` in a clone of txnlab (installed, not editable): it wrote
    into the catalogue's source, and `list` called every catalogue file "yours"."""
    checkout = home / "project"
    (checkout / "src" / "txnlab").mkdir(parents=True)
    (checkout / "src" / "txnlab" / "__init__.py").write_text("")
    (checkout / "scenarios").mkdir()
    (checkout / "scenarios" / "dirty-read.yaml").write_text(
        (Path(Catalogue().scenarios["dirty-read"].source)).read_text()
    )
    code, out, _ = cli("list")
    assert code == 0 and "yours" not in out
    monkeypatch.setenv("EDITOR", editor(home, "What this scenario shows, in one line", "Not in the checkout"))
    code, out, _ = interactive(cli, monkeypatch, "new", "mine")
    assert code == 0 and not (checkout / "scenarios" / "mine.yaml").exists()
    assert (home / "data" / "txnlab" / "scenarios" / "mine.yaml").is_file()
