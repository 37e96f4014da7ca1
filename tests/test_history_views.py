"""The derived anomalies in every view, from real runs: the ATM's lost update at READ COMMITTED,
Hermitage's G-single (read skew) at READ COMMITTED, and runs with no cycle (the ATM at
SERIALIZABLE, where atm2 is refused, and read skew at REPEATABLE READ). Text, workshop mode,
Markdown, the HTML report's cycle drawings and their links, run and matrix JSON, and the Elle
rw-register export, parsed back."""

from __future__ import annotations

import html.parser
import json
from collections import defaultdict
from pathlib import Path

import pytest

from terminal import terminal_stdin
from txnlab.levels import Level
from txnlab.render import markdown, text
from txnlab.render.derived import HEADING, NO_CYCLE
from txnlab.render.fit import display_width
from txnlab.render.html import render_report
from txnlab.render.report import RunReport
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue
from txnlab.workflow import run_cell

# A .spec of our own (two sessions, one permutation each way), so these tests need no corpus.
TWO_WRITERS_SPEC = """\
setup { CREATE TABLE test (i int PRIMARY KEY, t text); INSERT INTO test VALUES (5, 'apple'); }
teardown { DROP TABLE test; }
session s1
step w1 { UPDATE test SET t = 'pear' WHERE i = 5; }
session s2
step w2 { UPDATE test SET t = 'plum' WHERE i = 5; }
permutation w1 w2
permutation w2 w1
"""


def spec_file(tmp_path: Path) -> str:
    path = tmp_path / "two-writers.spec"
    path.write_text(TWO_WRITERS_SPEC)
    return str(path)
LOST_UPDATE = ("atm-lost-update", Level.READ_COMMITTED)
READ_SKEW = ("hermitage-g-single", Level.READ_COMMITTED)
REFUSED = ("atm-lost-update", Level.SERIALIZABLE)  # atm2's write fails with 40001: no cycle
SNAPSHOT = ("hermitage-g-single", Level.REPEATABLE_READ)  # t1 reads from one snapshot: no cycle
RUNS = (LOST_UPDATE, READ_SKEW, REFUSED, SNAPSHOT)


@pytest.fixture(scope="module")
def reports(lab: Lab, catalogue: Catalogue) -> dict[tuple[str, Level], RunReport]:
    return {(name, level): run_cell(lab, catalogue.resolve(name), level) for name, level in RUNS}


def names(report: RunReport) -> list[str]:
    assert report.analysis is not None, "the run recorded no history"
    return [a.name for a in report.analysis.anomalies]


# -- what the analysis found, as every view shows it ---------------------------------------------


def test_the_runs_have_the_cycles_the_scenarios_are_about_and_the_others_none(reports) -> None:  # type: ignore[no-untyped-def]
    assert names(reports[LOST_UPDATE]) == ["lost update"]
    assert names(reports[READ_SKEW]) == ["G-single"]
    assert names(reports[REFUSED]) == [] and names(reports[SNAPSHOT]) == []


def test_text_names_the_lost_update_after_the_verdict_and_explains_it_in_five_lines(reports) -> None:  # type: ignore[no-untyped-def]
    """The issue's target: on a projector (the 120 columns of a piped or wide terminal), the
    ATM's lost update fits in five lines, its title included."""
    out = text.render_timeline(reports[LOST_UPDATE], width=120)
    verdict = out.index("read committed: as expected — lost update happens")
    derived = out.index(HEADING)
    assert verdict < derived
    block = out[derived:].splitlines()
    assert block[1].startswith("  lost update (atm") and block[1].endswith("forbidden at repeatable read and above")
    explanation = [line for line in block[2:] if line.startswith("    ")]
    assert 1 <= len(explanation) <= 4 and block[2:2 + len(explanation)] == explanation
    assert "accounts[1]" in out[derived:]


def test_text_names_read_skew_as_g_single_forbidden_at_repeatable_read(reports) -> None:  # type: ignore[no-untyped-def]
    out = text.render_timeline(reports[READ_SKEW], width=100)
    said = out[out.index(HEADING):]
    assert "\n  G-single (t" in said and "forbidden at repeatable read and above" in said
    assert NO_CYCLE not in said


def test_a_run_without_a_cycle_that_saw_everything_says_it_is_serializable_as_far_as_observed(reports) -> None:  # type: ignore[no-untyped-def]
    out = text.render_timeline(reports[SNAPSHOT], width=100)
    assert out[out.index(HEADING):].splitlines()[1] == f"  {NO_CYCLE}"


def test_a_run_without_a_cycle_but_with_gaps_never_says_serializable(reports) -> None:  # type: ignore[no-untyped-def]
    """The refused ATM: atm2 did not commit and the ledger has no primary key."""
    out = text.render_timeline(reports[REFUSED], width=100)
    said = out[out.index(HEADING):].splitlines()
    assert said[1] == "  no cycle among what was observed; not observed: 2 other gaps (below)"
    assert "serializable" not in said[1]


def test_the_ledger_without_a_primary_key_is_said_in_one_line_never_hidden(reports) -> None:  # type: ignore[no-untyped-def]
    out = text.render_timeline(reports[LOST_UPDATE], width=180)
    gaps = [line for line in out.splitlines() if line.startswith("  not observed: ") and "ledger" in line]
    assert len(gaps) == 1


@pytest.mark.parametrize("width", [40, 60, 80])
def test_the_derived_lines_fit_the_width(reports, width: int) -> None:  # type: ignore[no-untyped-def]
    for run in RUNS:
        out = text.render_timeline(reports[run], width=width)
        assert all(display_width(line) <= width for line in out[out.index("Derived"):].splitlines())


def test_workshop_mode_explains_the_cycle_after_the_verdict(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with terminal_stdin("\n" * 10) as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        code, out, _ = cli("run", "atm-lost-update", "--level", "rc", "--step")
    assert code == 0
    assert out.index("read committed: as expected") < out.index(HEADING) < out.index("lost update (atm")


# -- Markdown and the matrices --------------------------------------------------------------------


def test_markdown_lists_each_anomaly_and_its_explanation_escaped(reports) -> None:  # type: ignore[no-untyped-def]
    out = markdown.render_timeline(reports[LOST_UPDATE])
    said = out[out.index(HEADING):]
    assert "- **lost update (atm" in said
    assert "accounts\\[1\\]" in said and "accounts[1]" not in said  # brackets escaped, as everything quoted
    assert NO_CYCLE in markdown.render_timeline(reports[SNAPSHOT])


def test_the_text_and_markdown_matrices_list_the_cells_with_a_cycle(reports) -> None:  # type: ignore[no-untyped-def]
    runs = [reports[run] for run in RUNS]
    grid = text.render_matrix(runs, width=120)
    listed = grid[grid.index("Cycles derived from each run's history:"):]
    assert "atm-lost-update at read committed: lost update" in " ".join(listed.split())
    assert "hermitage-g-single at read committed: G-single" in " ".join(listed.split())
    assert "at serializable: lost update" not in listed and "at repeatable read:" not in listed
    assert "at serializable: no cycle" not in listed  # its only gaps are counted with the others', in one line
    assert (" other run: no cycle among what was observed, with gaps `txnlab run` lists (a table without a primary key,"
            " a transaction that did not commit...)") in " ".join(listed.split())
    page = markdown.render_matrix(runs)
    assert "- atm-lost-update at read committed: lost update (atm" in page


def test_the_hermitage_table_lists_the_derived_cycles_under_it(reports) -> None:  # type: ignore[no-untyped-def]
    table = text.render_anomaly_table([reports[READ_SKEW], reports[SNAPSHOT]], width=100)
    listed = " ".join(table[table.index("Cycles derived"):].split())
    assert "hermitage-g-single at read committed: G-single (t1 → t2 → t1)" in listed
    assert "repeatable read: G-single" not in listed


def test_a_matrix_of_runs_without_cycles_or_gaps_says_so(reports) -> None:  # type: ignore[no-untyped-def]
    grid = text.render_matrix([reports[SNAPSHOT]], width=120)
    assert "no run's history has a cycle" in grid


# -- HTML ------------------------------------------------------------------------------------------


class Page(html.parser.HTMLParser):
    """Every element's tag and attributes, and the `href`s inside the derived sections."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.cycle_links: list[str] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._derived = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "div" and (self._derived or "derived" in attributes.get("class", "").split()):
            self._derived += 1  # the depth of divs inside the derived section
        if self._derived and "href" in attributes:
            self.cycle_links.append(attributes["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._derived:
            self._derived -= 1


def test_html_draws_each_cycle_and_links_every_edge_to_existing_step_rows(reports) -> None:  # type: ignore[no-untyped-def]
    runs = [reports[run] for run in RUNS]
    text_ = render_report(runs, "cycles")
    page = Page(text_)
    drawings = [attrs for tag, attrs in page.tags if tag == "svg" and "cycle" in attrs.get("class", "").split()]
    assert len(drawings) == sum(len(r.analysis.anomalies) for r in runs) == 2  # type: ignore[union-attr]
    arrows = [attrs for tag, attrs in page.tags if tag == "a" and "dep" in attrs.get("class", "").split()]
    assert {a["data-kind"] for a in arrows} >= {"rw"}
    assert page.cycle_links and all(link.startswith("#") and link[1:] in page.ids for link in page.cycle_links)
    assert text_.count(f'<p class="no-cycle">{NO_CYCLE}</p>') == 1  # SNAPSHOT; REFUSED has gaps
    assert text_.count('<p class="no-cycle">no cycle among what was observed; not observed: 2 other gaps') == 1


def test_an_edge_through_a_read_matched_by_its_values_is_drawn_as_inferred(reports) -> None:  # type: ignore[no-untyped-def]
    report = reports[LOST_UPDATE]
    page = Page(render_report([report], "atm"))
    arrows = [attrs for tag, attrs in page.tags if tag == "a" and "dep" in attrs.get("class", "").split()]
    edges = report.analysis.anomalies[0].cycle  # type: ignore[union-attr]
    assert [("inferred" in a["class"].split()) for a in arrows] == [e.inferred for e in edges]
    assert any(e.inferred for e in edges)  # `SELECT balance` has no key: the read is placed by its value


def test_the_report_with_cycles_still_loads_nothing(reports) -> None:  # type: ignore[no-untyped-def]
    page = Page(render_report([reports[run] for run in RUNS], "offline"))
    for tag, attrs in page.tags:
        assert "src" not in attrs or not attrs["src"].startswith(("http:", "https:", "//"))
        assert tag not in ("script", "link", "img", "iframe")


# -- JSON ------------------------------------------------------------------------------------------

EDGE_KEYS = {"from", "to", "kind", "object", "predicate", "inferred", "evidence", "steps"}


def run_json(cli, *args: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    code, out, err = cli("run", *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_run_json_has_the_history_and_the_derived_lost_update(cli) -> None:  # type: ignore[no-untyped-def]
    run = run_json(cli, "atm-lost-update", "--level", "rc")["runs"][0]
    history = run["history"]
    assert set(history) == {"transactions", "versions", "edges", "gaps", "unrecorded_reads"}
    by_id = {t["id"]: t for t in history["transactions"]}
    assert {"atm1", "atm2"} <= set(by_id) and by_id["atm2"]["outcome"] == "committed"
    read = next(r for r in by_id["atm2"]["reads"] if r["step"] == "atm2_read")
    assert read["match"] == "matched" and read["values"] == ["100"] and read["version"]["number"] == 0
    assert [w["object"] for w in by_id["atm2"]["writes"]] == ["accounts[1]"]
    versions = [v for v in history["versions"] if v["object"] == "accounts[1]"]
    assert [v["number"] for v in versions] == [0, 1, 2] and [v["writer"] for v in versions] == [None, "atm1", "atm2"]
    [anomaly] = run["derived_anomalies"]
    assert anomaly["name"] == "lost update" and anomaly["weakest_violated"] == "repeatable read"
    assert set(anomaly["cycle"]["transactions"]) == {"atm1", "atm2"}
    assert all(set(edge) == EDGE_KEYS for edge in anomaly["cycle"]["edges"])
    assert {edge["kind"] for edge in anomaly["cycle"]["edges"]} >= {"rw"}
    assert isinstance(anomaly["explanation"], str) and "accounts[1]" in anomaly["explanation"]


def test_run_json_derived_anomalies_is_empty_without_a_cycle_and_records_the_abort(cli) -> None:  # type: ignore[no-untyped-def]
    run = run_json(cli, "atm-lost-update", "--level", "ser")["runs"][0]
    assert run["derived_anomalies"] == []
    outcomes = {t["id"]: t["outcome"] for t in run["history"]["transactions"]}
    assert outcomes["atm1"] == "committed" and outcomes["atm2"] == "aborted"


def test_run_json_history_is_null_for_a_spec_run_which_records_none(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", spec_file(tmp_path), "--format", "json")
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert runs and all(r["history"] is None and r["derived_anomalies"] is None for r in runs)


def test_matrix_json_rows_carry_the_derived_anomalies_next_to_the_declared_one(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("matrix", "atm-lost-update", "hermitage-g-single", "--level", "rc,rr", "--format", "json")
    assert code == 0, err
    rows = {(v["scenario"], v["level"]): v for v in json.loads(out)["verdicts"]}
    assert [a["name"] for a in rows["atm-lost-update", "read committed"]["derived_anomalies"]] == ["lost update"]
    assert rows["atm-lost-update", "read committed"]["anomaly"] == "lost update"
    assert [a["name"] for a in rows["hermitage-g-single", "read committed"]["derived_anomalies"]] == ["G-single"]
    assert rows["hermitage-g-single", "repeatable read"]["derived_anomalies"] == []


# -- the Elle export -------------------------------------------------------------------------------


def elle(cli, *args: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    code, out, err = cli("run", *args, "--format", "elle")
    assert code == 0, err
    return json.loads(out)


def assert_well_formed(ops: list[dict]) -> None:  # type: ignore[type-arg]
    """Each op as Elle's rw-register wants it: a completion after each invoke of its process,
    micro-ops [f, key, value], every write of a key a value of its own, every read a value some
    write of that key wrote, or null (the initial state)."""
    assert [op["index"] for op in ops] == list(range(len(ops)))
    assert [op["time"] for op in ops] == sorted(op["time"] for op in ops)
    open_: dict[int, dict] = {}  # type: ignore[type-arg]
    written: dict[str, list[int]] = defaultdict(list)
    for op in ops:
        assert op["f"] == "txn" and isinstance(op["process"], int)
        for f, key, value in op["value"]:
            assert f in ("r", "w") and isinstance(key, str)
            assert value is None or isinstance(value, int)
        if op["type"] == "invoke":
            assert op["process"] not in open_
            open_[op["process"]] = op
            continue
        assert op["type"] in ("ok", "fail", "info")
        invoked = open_.pop(op["process"])
        assert [m[:2] for m in invoked["value"]] == [m[:2] for m in op["value"]]
        if op["type"] == "ok":
            for f, key, value in op["value"]:
                if f == "w":
                    assert value not in written[key]
                    written[key].append(value)
    assert not open_
    for op in ops:
        if op["type"] == "ok":
            assert all(v is None or v in written[k] for f, k, v in op["value"] if f == "r")


def test_the_elle_export_of_the_lost_update_reads_the_setup_twice_and_writes_two_versions(cli) -> None:  # type: ignore[no-untyped-def]
    ops = elle(cli, "atm-lost-update", "--level", "rc")
    assert_well_formed(ops)
    done = [op for op in ops if op["type"] == "ok"]
    account = [[m for m in op["value"] if m[1] == "accounts[1]"] for op in done]
    assert sorted(account, key=lambda ms: ms[-1][2]) == [
        [["r", "accounts[1]", None], ["w", "accounts[1]", 1]],
        [["r", "accounts[1]", None], ["w", "accounts[1]", 2]],
    ]


def test_the_elle_export_of_read_skew_and_of_an_abort_is_well_formed(cli) -> None:  # type: ignore[no-untyped-def]
    skew = elle(cli, "hermitage-g-single", "--level", "rc")
    assert_well_formed(skew)
    t1 = [op for op in skew if op["type"] == "ok" and op["process"] == 0][0]
    assert t1["value"] == [["r", "test[1]", None], ["r", "test[2]", 1]]  # row 2 read after t2's commit
    aborted = elle(cli, "atm-lost-update", "--level", "ser")
    assert_well_formed(aborted)
    assert sorted(op["type"] for op in aborted if op["type"] != "invoke") == ["fail", "ok"]


@pytest.mark.parametrize("args", [
    ("atm-lost-update", "--level", "rc,rr"),
    ("atm-lost-update", "hermitage-g-single", "--level", "rc"),
    ("atm-lost-update", "--level", "rc", "--repeat", "2"),
    ("atm-lost-update", "--level", "rc", "--permutations", "all"),
], ids=["two-levels", "two-scenarios", "repeat", "permutations"])
def test_the_elle_export_refuses_more_than_one_run_in_one_line(cli, args) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", *args, "--format", "elle")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("txnlab: error: --format elle exports the history of one run")


def test_the_elle_export_refuses_a_spec(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", spec_file(tmp_path), "--format", "elle")
    assert code == 2 and out == "" and err.count("\n") == 1 and "record none" in err


# -- a user's scenario with no anomaly rule ---------------------------------------------------------

ON_CALL = (Path(__file__).parent / "history_cases" / "on-call.yaml").read_text()  # also in test_history_caveats


def test_a_scenario_without_an_anomaly_rule_gets_its_cycle_explained_and_its_ambiguous_read_said(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "on-call.yaml"
    path.write_text(ON_CALL)
    code, out, err = cli("run", str(path), "--level", "rr")
    assert code == 0, err
    said = out[out.index(HEADING):].splitlines()
    assert said[1] == "  G2 (a → b → a): forbidden at serializable"
    assert "  ambiguous (equal values in several versions, so no edge): a_count (doctors)" in said
    assert not any(line.startswith("  not observed: a_count read") for line in said)  # said once, above


def test_predicate_edges_are_drawn_dotted_and_link_to_their_steps(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "on-call.yaml"
    path.write_text(ON_CALL)
    report = run_cell(lab, Catalogue(user=[tmp_path]).resolve("on-call"), Level.REPEATABLE_READ)
    page = Page(render_report([report], "on call"))
    arrows = [attrs for tag, attrs in page.tags if tag == "a" and "dep" in attrs.get("class", "").split()]
    assert arrows and all("predicate" in a["class"].split() for a in arrows)
    assert all(link[1:] in page.ids for link in page.cycle_links)


def test_the_elle_export_refuses_no_history_before_running(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("run", "atm-lost-update", "--level", "rc", "--format", "elle", "--no-history")
    assert (code, out) == (2, "")
    assert err == "txnlab: error: --format elle exports the run's history, and --no-history records none\n"


def test_json_history_is_null_with_no_history(cli) -> None:  # type: ignore[no-untyped-def]
    run = run_json(cli, "atm-lost-update", "--level", "rc", "--no-history")["runs"][0]
    assert run["history"] is None and run["derived_anomalies"] is None
    assert HEADING not in cli("run", "atm-lost-update", "--level", "rc", "--no-history")[1]
