"""Newcomer rough edges of the command line, through the real CLI on the real server:
interactive commands need a terminal, --level takes names and lists, unknown tags and
output folders are one line and exit 2, Markdown escapes other people's text."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli import scenario_file

HOSTILE = """\
name: hostile-text
title: A title with <script>alert(1)</script> and a | pipe
summary: Summary <img src=x onerror=alert(2)> with | pipes | and *stars*.
sessions: {a: {}, b: {}}
steps:
  - {name: read, session: a, sql: "SELECT '<script>alert(3)</script>|x' AS \\"a|b\\""}
  - {name: other, session: b, sql: "SELECT 1 AS \\"<b>one</b>\\" WHERE 'a|b' <> '`'"}
expect: {all: {}}
"""


def txnlab(*args: str, stdin: int | None = subprocess.DEVNULL, **env: str) -> subprocess.CompletedProcess[str]:
    """`txnlab ARGS` as its own process, stdin not a terminal unless given."""
    return subprocess.run([sys.executable, "-m", "txnlab", *args], stdin=stdin, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", **env}, timeout=60)


@pytest.mark.parametrize("args", [
    ["run", "atm-lost-update", "--level", "rc", "--step"],
    ["run", "atm-lost-update", "--predict"],
    ["new", "from-a-pipe"],
    ["edit", "dirty-read"],
])
def test_interactive_commands_without_a_terminal_say_so_and_exit_2(args: list[str], tmp_path: Path) -> None:
    done = txnlab(*args, XDG_DATA_HOME=str(tmp_path), EDITOR="true")
    what = "--step" if args[0] == "run" else f"txnlab {args[0]}"
    assert (done.returncode, done.stderr) == (2, f"txnlab: error: {what} is interactive and needs a terminal, but stdin is not one\n")
    assert done.stdout == "" and not any(tmp_path.rglob("*.yaml"))


def test_step_mode_refuses_json_and_markdown_output(cli) -> None:  # type: ignore[no-untyped-def]
    for output_format in ("json", "markdown"):
        code, out, err = cli("run", "atm-lost-update", "--step", "--format", output_format)
        assert (code, out) == (2, "")
        assert err == f"txnlab: error: --step shows each step on the terminal; it cannot print --format {output_format}\n"


def run_levels(out: str) -> list[str]:
    return [run["level"] for run in json.loads(out)["runs"]]


@pytest.mark.parametrize(("option", "levels"), [
    ("rc,rr", ["read committed", "repeatable read"]),
    ("read committed", ["read committed"]),
    ("serializable", ["serializable"]),
    ("SER, ru", ["read uncommitted", "serializable"]),
    ("repeatable-read,rr", ["repeatable read"]),
])
def test_level_takes_short_names_full_names_and_lists(cli, option: str, levels: list[str]) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", "atm-lost-update", "--level", option, "--format", "json")
    assert code == 0 and run_levels(out) == levels


def test_matrix_and_report_take_level_lists_too(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("matrix", "atm-lost-update", "--level", "rc,serializable", "--format", "json")
    assert code == 0 and [v["level"] for v in json.loads(out)["verdicts"]] == ["read committed", "serializable"]
    handout = tmp_path / "handout.md"
    code, _, _ = cli("report", "atm-lost-update", "--level", "read committed,rr", "-o", str(handout))
    headings = re.findall(r"^### atm-lost-update at (.+)$", handout.read_text(), flags=re.M)
    assert code == 0 and headings == ["READ COMMITTED", "REPEATABLE READ"]


def test_an_unknown_level_is_one_line_and_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("run", "atm-lost-update", "--level", "rc,snapshot")
    assert code == 2 and err.startswith("txnlab: error: --level: unknown isolation level 'snapshot'; choose one of ru")
    assert err.count("\n") == 1


def test_an_unknown_tag_is_exit_2_with_the_known_tags_in_list_and_matrix_alike(cli) -> None:  # type: ignore[no-untyped-def]
    results = [cli("list", "--tag", "lost-updat"), cli("matrix", "--tag", "lost-updat"), cli("matrix", "--suite", "lost-updat")]
    for code, out, err in results:
        assert (code, out) == (2, "")
        assert err.startswith("txnlab: error: no scenario is tagged 'lost-updat'; did you mean lost-update? known tags: ")
        assert "hermitage" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", [["report", "dirty-read", "--level", "rc"], ["docs"]])
def test_an_output_file_in_a_missing_folder_is_refused_before_running(cli, tmp_path: Path, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    output = tmp_path / "no" / "such" / "folder" / "page.md"
    code, out, err = cli(*command, "-o", str(output))
    assert (code, out) == (2, "")
    assert err == f"txnlab: error: cannot write {output}: the directory {output.parent} does not exist\n"
    assert not (tmp_path / "no").exists()


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def assert_safe_markdown(page: str) -> None:
    """No raw HTML from the scenario outside code spans (where HTML is text), and every
    table row has as many cells as its header."""
    outside_code = re.sub(r"(`+).+?\1", "", page)
    assert not re.search(r"<(script|img|b>)", outside_code, flags=re.I), page
    for table in re.findall(r"(?:^\|.*\|$\n?)+", page, flags=re.M):
        rows = table.splitlines()
        assert {unescaped_pipes(row) for row in rows} == {unescaped_pipes(rows[0])}, table


def test_markdown_output_escapes_html_and_pipes_from_scenarios_and_values(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = scenario_file(tmp_path, HOSTILE)
    code, out, _ = cli("run", path, "--level", "rc", "--format", "markdown")
    assert code == 0
    assert_safe_markdown(out)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out  # shown as text, not dropped
    assert "`SELECT '<script>alert(3)</script>\\|x' AS \"a\\|b\"`" in out  # SQL in a code span: literal
    handout = tmp_path / "handout.md"
    code, _, _ = cli("report", path, "--level", "rc,rr", "-o", str(handout))
    assert code == 0
    assert_safe_markdown(handout.read_text())
    code, out, _ = cli("matrix", path, "--format", "markdown")
    assert code == 0
    assert_safe_markdown(out)


def test_markdown_escapes_are_only_ever_before_punctuation_so_numbers_read_as_written(cli) -> None:  # type: ignore[no-untyped-def]
    """CommonMark escapes only punctuation: `\\18.6` would show its backslash. A new user saw
    "PostgreSQL \\18.6." in a handout; the version must read 18.6."""
    code, out, _ = cli("run", "atm-lost-update", "--level", "ser", "--format", "markdown")
    assert code == 0
    assert not re.search(r"\\[0-9A-Za-z]", out.replace("<br>", "")), re.findall(r".{20}\\[0-9A-Za-z].{5}", out)
    assert re.search(r"PostgreSQL \d+\\?\.\d", out)


def test_run_and_matrix_json_carry_a_schema_version(cli) -> None:  # type: ignore[no-untyped-def]
    for command in (["run", "dirty-read", "--level", "rc"], ["matrix", "dirty-read"]):
        code, out, _ = cli(*command, "--format", "json")
        assert code == 0 and json.loads(out)["schema_version"] == 2


@pytest.mark.parametrize("args, problem", [
    (["run", "--bogus"], "No such option '--bogus'; see 'txnlab run --help'"),
    (["nosuch"], "No such command 'nosuch'; see 'txnlab --help'"),
    (["run"], "Missing argument 'NAME...'; see 'txnlab run --help'"),
    (["run", "dirty-read", "--format", "xml"],
     "Invalid value for '--format': 'xml' is not one of 'text', 'json', 'markdown', 'isolationtester', 'elle'; see 'txnlab run --help'"),
])
def test_a_usage_mistake_is_one_line_with_where_to_look_and_exit_2(cli, args: list[str], problem: str) -> None:  # type: ignore[no-untyped-def]
    """click alone prints usage, a hint and the error on four lines."""
    code, out, err = cli(*args)
    assert (code, out, err) == (2, "", f"txnlab: error: {problem}\n")
