"""What the views say about a `.spec` run is true (issue 10, found by a new user's trial).

txnlab sets no isolation level for a spec: its sessions keep the server's default unless their
own SQL sets another. So no view may name a level the run never set (JSON says null, tables
"as the spec sets it"), `--level` is refused, and the session setup SQL that sets the level is
shown where the timeline is. A spec whose setup SQL failed says "setup failed", not "timed out".
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

# Write skew under SERIALIZABLE, set only by the sessions' own setup: one permutation fails 40001.
SKEW = """\
setup { CREATE TABLE t (k text PRIMARY KEY, on_call bool); INSERT INTO t VALUES ('a', true), ('b', true); }
teardown { DROP TABLE t; }
session s1
setup { BEGIN ISOLATION LEVEL SERIALIZABLE; }
step r1 { SELECT count(*) FROM t WHERE on_call; }
step w1 { UPDATE t SET on_call = false WHERE k = 'a'; }
step c1 { COMMIT; }
session s2
setup { BEGIN ISOLATION LEVEL SERIALIZABLE; }
step r2 { SELECT count(*) FROM t WHERE on_call; }
step w2 { UPDATE t SET on_call = false WHERE k = 'b'; }
step c2 { COMMIT; }
permutation r1 r2 w1 w2 c1 c2
"""

BROKEN_SETUP = "setup { SELECT * FROM nosuch; }\nsession s\nstep a { SELECT 1; }\n"

SPEC_LEVEL = "as the spec sets it"


pytestmark = pytest.mark.usefixtures("plain_output")  # conftest: no colour, 140 columns


@pytest.fixture
def skew(tmp_path: Path) -> str:
    path = tmp_path / "skew.spec"
    path.write_text(SKEW)
    return str(path)


@pytest.fixture
def broken(tmp_path: Path) -> str:
    path = tmp_path / "b4.spec"
    path.write_text(BROKEN_SETUP)
    return str(path)


def _flat(text: str) -> str:
    """Text with table borders, HTML tags and wrapping taken out, to search for phrases."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>|[│┌┐└┘├┤┬┴┼─|]", " ", text)).split())


def test_json_of_a_spec_run_gives_no_level_since_txnlab_set_none(cli, skew) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", skew, "--format", "json")
    runs = json.loads(out)["runs"]
    assert code == 0 and runs
    assert [(r["level"], r["verdict"]["level"]) for r in runs] == [(None, None)] * len(runs)
    code, out, _ = cli("matrix", skew, "--format", "json")
    assert code == 0 and [v["level"] for v in json.loads(out)["verdicts"]] == [None]


def test_every_table_of_a_spec_run_heads_its_level_as_the_spec_sets_it(cli, skew, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outputs = [cli("matrix", skew)[1], cli("matrix", skew, "--format", "markdown")[1]]
    for name in ("x.html", "x.md"):
        code, _, _ = cli("report", skew, "-o", str(tmp_path / name))
        assert code == 0
        outputs.append((tmp_path / name).read_text())
    for output in outputs:
        assert "read committed" not in output.lower()
    assert all(SPEC_LEVEL in output for output in outputs[:3]), "the matrices and the page's contents name it"


@pytest.mark.parametrize("command", [["run"], ["matrix"], ["report", "-o", "x.html"]])
def test_level_option_with_a_spec_is_refused_in_one_line(cli, skew, command, tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = [a if a != "x.html" else str(tmp_path / a) for a in command]
    code, out, err = cli(*args, skew, "--level", "ser")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("txnlab: error: ")
    assert "a .spec sets its own isolation levels" in err
    assert not (tmp_path / "x.html").exists()


def test_the_session_setup_that_sets_the_level_is_shown_with_the_timeline(cli, skew, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, text, err = cli("run", skew)
    assert code == 0, err
    _, markdown, _ = cli("run", skew, "--format", "markdown")
    cli("report", skew, "-o", str(tmp_path / "x.html"))
    page = (tmp_path / "x.html").read_text()
    for output in (text, markdown, page):
        flat = _flat(output)
        assert "s1's setup: BEGIN ISOLATION LEVEL SERIALIZABLE;" in flat
        assert "s2's setup: BEGIN ISOLATION LEVEL SERIALIZABLE;" in flat


def test_a_failed_spec_setup_says_setup_failed_in_every_view_not_timed_out(cli, broken) -> None:  # type: ignore[no-untyped-def]
    code, matrix, err = cli("matrix", broken)
    assert code == 2 and err.count("\n") == 1 and 'relation "nosuch" does not exist' in err
    assert "setup failed" in _flat(matrix)
    _, markdown_matrix, _ = cli("matrix", broken, "--format", "markdown")
    _, run_json, _ = cli("run", broken, "--format", "json")
    run = json.loads(run_json)["runs"][0]
    assert (run["ended_early"], run["verdict"]["outcome"]) == ("setup failed", "setup failed")
    _, text, _ = cli("run", broken)
    assert "relation \"nosuch\" does not exist" in text
    assert "┌" not in text, "no step ran: no empty table frame"
    for output in (matrix, markdown_matrix, run_json, text):
        assert "timed out" not in output


def test_a_spec_name_is_not_repeated_as_its_title(cli, skew, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("show", skew)
    assert code == 0 and out.split("\n")[0] == "skew"
    for name in ("x.md", "x.html"):
        code, out, _ = cli("report", skew, "-o", str(tmp_path / name))
        assert (code, out) == (0, f"Wrote {tmp_path / name} (1 run).\n")
    markdown = (tmp_path / "x.md").read_text()
    assert [line for line in markdown.splitlines() if "skew" in line] == ["## skew", "### skew"]
    assert '<code>skew</code>' not in (tmp_path / "x.html").read_text()


def test_no_verdict_and_invariant_sql_print_at_normal_intensity(lab) -> None:  # type: ignore[no-untyped-def]
    """Dim text is unreadable on a projector: what a reader must read is never dim."""
    from txnlab.levels import Level
    from txnlab.render.text import render_timeline
    from txnlab.scenario import Catalogue
    from txnlab.scenario.chosen_permutations import session_piles
    from txnlab.scenario.permutations import interleavings
    from txnlab.workflow import run_cell, run_permutations

    scenario = Catalogue().resolve("atm-lost-update")
    report = run_cell(lab, scenario, Level.READ_COMMITTED)
    dim = "\x1b[2m"
    out = render_timeline(report, color=True)
    sql = next(line for line in out.splitlines() if "SELECT balance = 100" in line)
    assert dim not in sql
    other_order = next(p for p in interleavings(session_piles(scenario)) if p != scenario.default_permutation)
    unjudged = next(run_permutations(lab, scenario, Level.READ_COMMITTED, [other_order]))
    line = next(line for line in render_timeline(unjudged, color=True).splitlines() if "no verdict" in line)
    assert dim not in line
