"""`txnlab new` and `txnlab edit` in $EDITOR: a scenario file is written only when the
edit is valid, an abandoned edit changes nothing, and errors offer to reopen the editor.
Editors here are small scripts standing in for a person (no database needed)."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from terminal import terminal_stdin
from txnlab.cli import main
from txnlab.scenario import Catalogue, load_scenario


def editor_script(tmp_path: Path, *edits: str) -> str:
    """An $EDITOR that applies the n-th Python edit (a replace on the text) on its n-th call."""
    script = tmp_path / "_editor.py"  # a helper by its name: not a scenario of --dir tmp_path
    script.write_text(textwrap.dedent(f"""
        import pathlib, sys
        counter = pathlib.Path({str(tmp_path / 'calls')!r})
        call = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(call + 1))
        edits = {list(edits)!r}
        path = pathlib.Path(sys.argv[-1])
        old, new = edits[min(call, len(edits) - 1)].split(' => ')
        path.write_text(path.read_text().replace(old, new))
    """))
    return f"{sys.executable} {script}"


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], editor: str, *args: str,
            answers: str = "") -> tuple[int, str]:
    """`txnlab ARGS` in this process, on a terminal where `answers` are typed; (exit code, stdout+stderr)."""
    monkeypatch.setenv("EDITOR", editor)
    with terminal_stdin(answers) as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        with pytest.raises(SystemExit) as exited:
            main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out + err


def test_new_opens_a_template_and_saves_it_when_valid(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    editor = editor_script(tmp_path, "What this scenario shows, in one line => Bob's commit in the middle")
    code, out = run_cli(monkeypatch, capsys, editor, "new", "bob-commits", "--dir", str(tmp_path))
    assert code == 0 and "Saved" in out
    scenario = load_scenario(tmp_path / "bob-commits.yaml")
    assert scenario.name == "bob-commits" and scenario.title == "Bob's commit in the middle"


def test_new_abandoned_without_saving_writes_nothing(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = run_cli(monkeypatch, capsys, "true", "new", "never-saved", "--dir", str(tmp_path))
    assert code == 0 and "unchanged" in out
    assert not (tmp_path / "never-saved.yaml").exists()


def test_an_invalid_edit_shows_the_error_and_reopens_the_editor(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    editor = editor_script(tmp_path, "session: bob => session: carol", "session: carol => session: bob")
    code, out = run_cli(monkeypatch, capsys, editor, "new", "retried", "--dir", str(tmp_path), answers="y\n")
    assert code == 0
    assert "Not valid: step uses unknown session 'carol'" in out and "(line " in out
    assert (tmp_path / "calls").read_text() == "2"
    assert load_scenario(tmp_path / "retried.yaml").name == "retried"


def test_giving_up_on_an_invalid_edit_leaves_the_file_as_it_was_and_keeps_the_draft(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    original = Catalogue().resolve("dirty-read").source
    copy = tmp_path / "dirty-read.yaml"
    shutil.copy(original, copy)
    before = copy.read_bytes()
    editor = editor_script(tmp_path, "name: dirty-read => name: Dirty Read")
    code, out = run_cli(monkeypatch, capsys, editor, "edit", str(copy), answers="n\n")
    draft = tmp_path / "dirty-read.draft.yaml"
    assert code == 2
    assert f"txnlab: error: {copy} is unchanged: the edit is not valid; it is kept in {draft}" in out
    assert copy.read_bytes() == before
    assert "name: Dirty Read" in draft.read_text()  # the work is not lost
    assert list(tmp_path.glob(".dirty-read*")) == []  # no temporary file left behind


def test_edit_replaces_the_file_when_the_edit_is_valid(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "dirty-read.yaml"
    shutil.copy(Catalogue().resolve("dirty-read").source, copy)
    editor = editor_script(tmp_path, "tags: [ => tags: [workshop, ")
    code, _ = run_cli(monkeypatch, capsys, editor, "edit", str(copy))
    assert code == 0
    assert "workshop" in load_scenario(copy).tags
