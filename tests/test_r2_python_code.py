"""A Python step's code keeps its lines and indentation wherever the step's text is shown:
the text timeline, step mode (the workshop), Markdown, the HTML swimlanes' tooltips and
`txnlab show`, within the terminal's width. It was flattened into one run-on line, so a
`for`/`with` block read as nonsense. SQL steps are still reflowed as before."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest

from terminal import run_on_terminal
from txnlab.render.fit import code_lines, display_width

CODE = "with conn.cursor() as cur:\n    for n in range(3):\n        cur.execute('INSERT INTO t VALUES (%s)', [n])"
SCENARIO = f'''
SCENARIO = {{
    "name": "python-code-layout",
    "title": "A Python step whose code is a block",
    "summary": "The step's code is a for loop inside a with block.",
    "setup": "CREATE TABLE t (id int PRIMARY KEY)",
    "sessions": {{"app": {{}}, "other": {{"autocommit": True}}}},
    "steps": [
        {{"name": "app_loop", "session": "app", "sql": {CODE!r}}},
        {{"name": "other_count", "session": "other", "sql": "SELECT count(*)\\n  FROM t"}},
    ],
    "expect": {{"all": {{}}}},
}}


def play(run):
    def loop(conn):
        with conn.cursor() as cur:
            for n in range(3):
                cur.execute("INSERT INTO t VALUES (%s)", [n])
        return 3

    run.step("app_loop", loop)
    run.step("other_count")
    run.finish()
'''


@pytest.fixture
def scenario(tmp_path: Path) -> str:
    path = tmp_path / "code_layout.py"
    path.write_text(SCENARIO)
    return str(path)


def cell_text(out: str) -> list[str]:
    """The first column's content of each line of a text timeline (box-drawing stripped)."""
    return [line.split("│")[2].rstrip() for line in out.splitlines() if line.count("│") >= 3]


@pytest.mark.parametrize("width", [80, 120])
def test_text_timeline_keeps_the_codes_lines_and_indentation_within_the_width(cli, monkeypatch, scenario: str, width: int) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = cli("run", scenario, "--level", "rc")
    assert code == 0
    cells = cell_text(out)
    block = cells.index(" with conn.cursor() as cur:")
    assert cells[block + 1] == "     for n in range(3):"
    assert cells[block + 2].startswith("         cur.execute(")
    assert "SELECT count(*) FROM t" in out  # a SQL step is still reflowed onto one line
    assert [line for line in out.splitlines() if display_width(line) > width] == []


def test_markdown_shows_one_code_span_per_line_with_its_indentation(cli, scenario: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", scenario, "--level", "rc", "--format", "markdown")
    assert code == 0
    assert ("`with conn.cursor() as cur:`<br>&nbsp;&nbsp;&nbsp;&nbsp;`for n in range(3):`<br>"
            + "&nbsp;" * 8 + "`cur.execute('INSERT INTO t VALUES (%s)', [n])`") in out
    assert "`SELECT count(*) FROM t`" in out  # a SQL step is still one line


def test_html_swimlane_tooltip_keeps_the_codes_lines(cli, scenario: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "handout.html"
    code, _, _ = cli("report", scenario, "--level", "rc", "-o", str(page))
    assert code == 0
    titles = [html.unescape(t) for t in re.findall(r"<title>(.*?)</title>", page.read_text(), flags=re.S)]
    assert any(f"app: \n{CODE}\n" in title for title in titles), titles


def test_show_keeps_the_codes_lines_beside_the_step(cli, monkeypatch, scenario: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = cli("show", scenario)
    assert code == 0
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.endswith("with conn.cursor() as cur:"))
    margin = len(lines[first]) - len("with conn.cursor() as cur:")
    assert lines[first + 1] == " " * margin + "    for n in range(3):"
    assert lines[first + 2].startswith(" " * margin + "        cur.execute(")


def test_step_mode_on_a_terminal_shows_the_code_as_a_block(server_dsn: str, scenario: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    env["TXNLAB_DSN"] = server_dsn
    code, shown = run_on_terminal(["run", scenario, "--level", "rc", "--step"], env, columns=80,
                                  answer={"Press Enter to run it": "\n"})
    assert code == 0, shown
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown).splitlines()
    block = plain.index("with conn.cursor() as cur:")
    assert plain[block + 1:block + 3] == CODE.splitlines()[1:]
    assert [line for line in plain if display_width(line) > 80] == []


@pytest.mark.parametrize("width", range(1, 60))
def test_code_lines_never_exceed_the_width_and_keep_each_line(width: int) -> None:
    lines = code_lines(CODE, width)
    assert all(display_width(line) <= max(width, 1) for line in lines)
    if width >= 55:  # the longest line, and the 2 columns its continuation lines would hang
        assert lines == CODE.splitlines()
