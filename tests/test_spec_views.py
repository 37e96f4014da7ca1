"""A `.spec` run in every renderer (issue 10): `txnlab run X.spec` prints every permutation's
timeline, `report` draws every permutation as swimlanes with an index, `show` explains the
spec, and text, Markdown, HTML and JSON show what a spec run records that a YAML run does
not: every result set of a step, notifications, setup and teardown output. A spec states no
expectations, so no output pretends to a verdict.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


SPECS = Path(__file__).resolve().parents[2] / "shared" / "pg-isolation-specs" / "specs"
needs_corpus = pytest.mark.skipif(not SPECS.is_dir(), reason=f"the isolation spec corpus is not at {SPECS}")

# Every fact a spec run records: setup and teardown that return rows, a session setup that
# raises a notice, a step with two result sets, a NOTIFY received, a wait.
FACTS = """\
# Every fact a spec run records, for the renderers.
setup { CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); }
setup { SELECT 42 AS answer; }
teardown { DROP TABLE t; SELECT 'bye' AS farewell; }
session s1
setup { DO $$ BEGIN RAISE NOTICE 'hello from s1'; END $$; LISTEN ch; }
step s1both { SELECT 1 AS first; SELECT 2 AS second; }
step s1lock { BEGIN; UPDATE t SET v = 1 WHERE id = 1; }
step s1c { COMMIT; }
session s2
step s2notify { NOTIFY ch, 'ping'; }
step s2upd { UPDATE t SET v = 2 WHERE id = 1; }
permutation s1lock s2upd s1c s2notify s1both
permutation s1both s2notify s1lock s2upd(*) s1c
"""


pytestmark = pytest.mark.usefixtures("plain_output")  # conftest: no colour, 140 columns


@pytest.fixture
def facts(tmp_path: Path) -> str:
    path = tmp_path / "facts.spec"
    path.write_text(FACTS)
    return str(path)


def _flat(text: str) -> str:
    """Text output with the table's borders and wrapping taken out, to search for phrases."""
    return " ".join(re.sub(r"[│┌┐└┘├┤┬┴┼─]", " ", text).split())


def test_run_prints_every_permutation_without_a_verdict(cli, facts) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", facts)
    assert code == 0, err
    assert "permutation 1 of 2: s1lock s2upd s1c s2notify s1both" in out
    assert "permutation 2 of 2: s1both s2notify s1lock s2upd s1c" in out
    assert out.count("facts (PostgreSQL ") == 2
    assert "READ COMMITTED" not in out  # a spec's sessions keep the server's default; its SQL sets levels
    timelines, summary = out.rsplit("\n\n", 1)
    assert "as expected" not in timelines and "DIFFERS" not in out and "no verdict" not in out
    assert summary.split("\n")[2].split() == ["facts", *"as the spec sets it".split(), "2", "runs", "no", "expectation"]


def test_text_shows_every_result_set_of_a_step_in_order(cli, facts) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", facts)
    assert code == 0, err
    flat = _flat(out)
    assert flat.count("SELECT 1 AS first; SELECT 2 AS second; → first = 1 → second = 2") == 2
    assert flat.count("→ ok: BEGIN, UPDATE 1") == 2  # results without rows: their command statuses, in order


def test_text_shows_notifications_and_setup_and_teardown_output(cli, facts) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", facts)
    assert code == 0, err
    flat = _flat(out)
    assert flat.count('NOTIFY "ch" with payload "ping" from s2') == 2
    assert flat.count("before the steps: setup: answer = 42 s1's setup: DO $$ BEGIN RAISE NOTICE 'hello from s1'; "
                      "END $$; LISTEN ch; s1's setup: NOTICE: hello from s1") == 2
    assert flat.count("after the steps: teardown: farewell = 'bye'") == 2


def test_json_carries_result_sets_notifications_setup_and_no_verdict(cli, facts) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", facts, "--format", "json")
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert [(r["permutation_number"], r["permutation_count"]) for r in runs] == [(1, 2), (2, 2)]
    both = next(e for e in runs[0]["events"] if e["step"] == "s1both")
    assert [(r["columns"], r["rows"]) for r in both["results"]] == [(["first"], [[1]]), (["second"], [[2]])]
    assert both["notifications"] == [{"channel": "ch", "payload": "ping", "sender": "s2"}]
    assert [e["rows"] for e in runs[0]["setup"] if e["rows"]] == [[[42]]]
    assert [e["rows"] for e in runs[0]["teardown"] if e["rows"]] == [[["bye"]]]
    verdict = runs[0]["verdict"]
    assert verdict["matches_expectation"] is None
    assert verdict["unjudged"] == "a .spec states no expectations (isolationtester's expected output is its check)"


def test_markdown_shows_the_same_facts(cli, facts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "facts.md"
    code, _, err = cli("report", facts, "-o", str(page))
    assert code == 0, err
    text = page.read_text()
    assert text.count("`SELECT 1 AS first; SELECT 2 AS second;`<br>→ first = 1<br>→ second = 2") == 2
    assert text.count('NOTIFY "ch" with payload "ping" from s2') == 2
    assert text.count("- setup: answer = 42") == 2 and text.count("- teardown: farewell = 'bye'") == 2
    assert "Permutation 2 of 2: s1both s2notify s1lock s2upd s1c." in text
    assert "verdict" not in text and "as expected" not in text


def test_report_draws_every_permutation_as_swimlanes_with_an_index(cli, facts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "facts.html"
    code, out, err = cli("report", facts, "-o", str(page))
    assert (code, out) == (0, f"Wrote {page} (2 runs).\n"), err
    html = page.read_text()
    runs = re.findall(r'<article class="run" id="([^"]+)">(.*?)</article>', html, re.S)
    assert len(runs) == 2
    for run_id, body in runs:
        assert f'href="#{run_id}"' in html  # the contents table links every permutation
        assert body.count('<figure class="timeline">') == 1
        assert re.search(r'<div class="sql-output setup">.*answer = 42.*NOTICE:  hello from s1', body, re.S)
        assert re.search(r"<div class=\"sql-output teardown\">.*farewell = &#x27;bye&#x27;", body, re.S)
        assert '<div class="result">→ first = 1</div><div class="result">→ second = 2</div>' in body
        assert "from s2" in body and "class=\"verdict" not in body
    first = runs[0][1]
    # The swimlanes: s2upd's wait, and its completion, in s2's lane; the NOTIFY it received in s1's.
    assert re.search(r'<g class="bar wait"[^>]*data-session="s2" data-step="s2upd"', first)
    assert re.search(r'<text class="callout"[^>]*>NOTIFY ch</text>', first)


@needs_corpus
def test_a_spec_without_permutation_lines_shows_every_generated_one(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = str(SPECS / "simple-write-skew.spec")
    code, out, err = cli("run", spec)
    assert code == 0, err
    orders = re.findall(r"^permutation (\d) of 6: (.*)$", out, re.M)
    assert [n for n, _ in orders] == ["1", "2", "3", "4", "5", "6"]
    assert orders[0][1] == "rwx1 c1 rwx2 c2" and orders[-1][1] == "rwx2 c2 rwx1 c1"
    assert "ERROR 40001" in out  # the write skew refused in the interleaved orders
    page = tmp_path / "skew.html"
    code, _, err = cli("report", spec, "-o", str(page))
    assert code == 0, err
    assert page.read_text().count('<figure class="timeline">') == 6


@needs_corpus
def test_show_explains_a_spec(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("show", str(SPECS / "simple-write-skew.spec"))
    assert code == 0
    flat = " ".join(out.split())
    assert "s1 (a plain connection with the server's defaults, statements as written)" in flat
    assert "Steps (each session's, in order):" in out
    assert "6: every interleaving of the sessions' steps, in isolationtester's order (the spec lists none)" in flat
    assert "A .spec states no expectations" in flat


def test_show_lists_a_specs_permutations_with_their_markers(cli, facts) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("show", facts)
    assert code == 0
    assert "2, as the spec lists them" in out
    assert "2. s1both s2notify s1lock s2upd(*) s1c" in out


def test_matrix_of_a_spec_says_what_each_permutation_did(cli, facts) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("matrix", facts)
    assert code == 0, err
    flat = _flat(out)
    assert "facts #1: s1lock s2upd s1c s2notify s1both waits: s2upd" in flat
    assert "facts #2: s1both s2notify s1lock s2upd s1c waits: s2upd" in flat
    assert "✓" not in out and "✗" not in out


def test_a_spec_refuses_step_and_repeat(cli, facts) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", facts, "--repeat", "2")
    assert (code, out) == (2, "")
    assert err == (f"txnlab: error: --repeat follows one order of steps; {facts} is a .spec, which runs every "
                   "permutation as isolationtester does\n")


def test_a_failed_spec_setup_is_shown_then_exit_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "broken.spec"
    spec.write_text("setup { SELECT * FROM nosuch; }\nsession s1\nstep a { SELECT 1; }\n")
    code, out, err = cli("run", str(spec))
    assert code == 2
    assert 'setup: ERROR 42P01 relation "nosuch" does not exist' in out
    assert err == f'txnlab: error: {spec}:1: setup failed: 42P01 relation "nosuch" does not exist\n'


# s2 waits for s1's row, takes it when s1 commits, raises a notice and waits again, for s3's
# row: isolationtester prints the notice while s2 still waits (a NOTICE event of its own).
NOTICE_MID_WAIT = """\
setup { CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0); }
teardown { DROP TABLE t; }
session s1
step s1lock { BEGIN; UPDATE t SET v = 1 WHERE id = 1; }
step s1c { COMMIT; }
session s2
step s2wait { DO $$ BEGIN PERFORM 1 FROM t WHERE id = 1 FOR UPDATE; RAISE NOTICE 'got row 1'; PERFORM 1 FROM t WHERE id = 2 FOR UPDATE; END $$; }
session s3
step s3lock { BEGIN; UPDATE t SET v = 3 WHERE id = 2; }
step s3c { COMMIT; }
permutation s1lock s3lock s2wait s1c s3c
"""


def test_a_notice_read_while_a_step_waits_is_shown_in_its_lane(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "notice.spec"
    spec.write_text(NOTICE_MID_WAIT)
    code, out, err = cli("run", str(spec))
    assert code == 0, err
    flat = _flat(out)
    assert "COMMIT; → ok [idle] 5 ℹ still waiting; the server sent a notice NOTICE: got row 1 6 COMMIT;" in flat
    page = tmp_path / "notice.html"
    code, _, err = cli("report", str(spec), "-o", str(page))
    assert code == 0, err
    html = page.read_text()
    assert re.search(r'<g class="bar notice" data-seq="5" data-session="s2" data-step="s2wait"><title>[^<]*'
                     r"NOTICE:  got row 1</title>", html)
    assert '<div class="result">ℹ still waiting; the server sent a notice</div><div class="extra">NOTICE:  got row 1' in html
