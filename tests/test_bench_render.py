"""`txnlab bench`'s renderers, fed LoadResult values built here (renderers never touch the
database): the server's count is the headline, the client's shows only when it differs, every
figure lands in its column, JSON carries every field unrounded, the chart plots the results."""

from __future__ import annotations

import functools
import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence

import pytest

from txnlab.bench.model import BenchPlan, Latency, LoadResult
from txnlab.levels import Level
from txnlab.render.bench import BenchReport
from txnlab.render.bench.chart import chart_figure, render_chart, svg_element
from txnlab.render.bench.html import render_html
from txnlab.render.bench.json import render_json
from txnlab.render.bench.markdown import render_markdown
from txnlab.render.bench.table import LOCK_WAIT_FOOTNOTE, NOT_COUNTED
from txnlab.render.bench.text import render_text
from txnlab.scenario import Catalogue, Scenario

RC, SER = Level.READ_COMMITTED, Level.SERIALIZABLE


def result(level: Level = RC, clients: int = 2, tool: str = "txnlab", *, committed: int | None = 5000,
           committed_client: int | None = None, duration_s: float = 5.0, latency: Latency | None = Latency(1.5, 4.25, 9.75),
           lost: float = 0, holds: bool = True, notes: tuple[str, ...] = (), **figures: int | float) -> LoadResult:
    """One run's result; `committed_client` defaults to the server's count."""
    counted = committed if committed_client is None else committed_client
    return LoadResult(
        scenario="atm-lost-update", tool=tool, level=level, clients=clients, duration_s=duration_s,
        committed_server=committed, rolled_back_server=figures.get("rolled_back", 0), committed_client=counted or 0,
        latency=latency, retries=int(figures.get("retries", 0)),
        serialization_failures=int(figures.get("serialization_failures", 0)), deadlocks=int(figures.get("deadlocks", 0)),
        failed=int(figures.get("failed", 0)), lock_wait_ms=float(figures.get("lock_wait_ms", 0.0)),
        lock_waits=int(figures.get("lock_waits", 0)), measures={"lost_updates": lost},
        invariants={"total_preserved": holds}, notes=notes,
    )


@functools.cache
def atm() -> Scenario:
    return Catalogue().resolve("atm-lost-update")


def report(results: Sequence[LoadResult], *, pgbench: bool = False, retries: int = 5) -> BenchReport:
    scenario = atm()
    levels = tuple(dict.fromkeys(r.level for r in results))
    clients = tuple(sorted({r.clients for r in results}))
    plan = BenchPlan(scenario, levels, clients, duration_s=5.0, retries=retries, pgbench=pgbench)
    return BenchReport(plan, "18.1", tuple(results), "pgbench (PostgreSQL) 18.6" if pgbench else None)


def table_rows(text: str) -> list[list[str]]:
    """The text table's data rows, split on runs of two or more spaces."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    body = lines[rule + 1:lines.index("", rule)]
    return [re.split(r"\s{2,}", line.strip()) for line in body]


def header_lines(text: str) -> list[str]:
    """The text table's header lines: from the blank line after the run's line to the rule."""
    lines = text.splitlines()
    return lines[3:next(i for i, line in enumerate(lines) if line.startswith("---"))]


def test_text_headline_is_the_servers_count_and_the_clients_column_is_absent_when_both_agree() -> None:
    out = render_text([report([result(committed=5000), result(SER, committed=2500)])], width=200)
    top, bottom = header_lines(out)
    assert bottom.split()[:3] == ["level", "clients", "server"] and top.split()[0] == "tps"
    assert table_rows(out)[0][:3] == ["read committed", "2", "1,000"]  # 5000 committed over 5 s
    assert table_rows(out)[1][:3] == ["serializable", "2", "500"]
    assert "tps client" not in out


def test_text_shows_the_clients_count_beside_the_servers_when_they_differ_with_the_note_why() -> None:
    out = render_text([report([result(committed=5000, committed_client=4990,
                                      notes=("10 commits the client counted were not the server's",))])], width=200)
    assert table_rows(out)[0][:4] == ["read committed", "2", "1,000", "998"]
    assert "tps client: the tool's own count" in out
    assert "Notes:\n  read committed · 2 clients: 10 commits the client counted were not the server's" in out


def test_text_says_n_a_for_a_server_without_commit_counters_and_explains_it() -> None:
    out = render_text([report([result(committed=None, committed_client=4000)])], width=200)
    assert table_rows(out)[0][:4] == ["read committed", "2", NOT_COUNTED, "800"]
    assert "n/a: this server has no per-database commit counter" in out


def test_text_puts_every_figure_in_its_column_with_measures_and_invariant_verdicts() -> None:
    out = render_text([report([
        result(lost=37, holds=False, retries=0, lock_wait_ms=3.5, lock_waits=2),
        result(SER, lost=0, retries=44, serialization_failures=40, deadlocks=4, failed=1, lock_wait_ms=1234.5),
    ])], width=200)
    assert table_rows(out) == [
        ["read committed", "2", "1,000", "1.50", "4.25", "9.75", "0", "0", "0", "0", "3.50", "37", "VIOLATED"],
        ["serializable", "2", "1,000", "1.50", "4.25", "9.75", "44", "40", "4", "1", "1,234", "0", "holds"],
    ]
    lines = out.splitlines()
    assert lines[0] == "The blog's ATM loses a deposit at READ COMMITTED (atm-lost-update)"
    assert lines[1] == "PostgreSQL 18.1 · 5 s per run · up to 5 retries on 40001 and 40P01"
    top, bottom = header_lines(out)  # measure and invariant names stacked word by word
    assert (top.split()[-2:], bottom.split()[-2:]) == (["lost", "total"], ["updates", "preserved"])


def test_text_says_lock_wait_is_a_lower_bound_once() -> None:
    out = render_text([report([result(), result(SER)])], width=400)
    assert out.count(LOCK_WAIT_FOOTNOTE) == 1


def test_text_shows_a_dash_for_latency_when_nothing_committed() -> None:
    out = render_text([report([result(committed=0, latency=None, failed=12)])], width=200)
    assert table_rows(out)[0][3:6] == ["-", "-", "-"]


def test_text_with_pgbench_has_a_tool_column_and_the_pgbench_row_beside_the_txnlab_row() -> None:
    out = render_text([report([result(), result(tool="pgbench", committed=5500)], pgbench=True)], width=200)
    assert header_lines(out)[-1].split()[:3] == ["level", "clients", "tool"]
    assert [row[:4] for row in table_rows(out)] == [
        ["read committed", "2", "txnlab", "1,000"], ["read committed", "2", "pgbench", "1,100"]]
    assert "tool" not in header_lines(render_text([report([result()])], width=200))[-1]


def test_json_is_a_list_with_one_object_per_result_with_every_field_unrounded() -> None:
    document = json.loads(render_json([report([
        result(committed=4999, committed_client=4998, duration_s=3.0, lost=7, holds=False, retries=2,
               serialization_failures=3, deadlocks=1, failed=1, lock_wait_ms=12.25, lock_waits=3, rolled_back=4,
               notes=("a note",)),
        result(SER, clients=8, tool="pgbench", committed=None, committed_client=300, latency=None),
    ], pgbench=True)]))
    first, second = document
    assert first == {
        "schema_version": 2, "server_version": "18.1",
        "scenario": "atm-lost-update", "tool": "txnlab", "level": "read committed", "clients": 2,
        "tps": 4999 / 3.0, "tps_client": 4998 / 3.0, "latency_ms": {"median": 1.5, "p95": 4.25, "p99": 9.75},
        "retries": 2, "serialization_failures": 3, "deadlocks": 1, "failed": 1, "lock_wait_ms": 12.25,
        "lock_waits": 3, "committed": 4999, "committed_client": 4998, "rolled_back": 4, "duration_s": 3.0,
        "measures": {"lost_updates": 7}, "invariants": {"total_preserved": False}, "notes": ["a note"],
    }
    assert (second["level"], second["clients"], second["tool"]) == ("serializable", 8, "pgbench")
    assert second["tps"] is None and second["committed"] is None and second["latency_ms"] is None
    assert second["tps_client"] == 60.0


def test_markdown_is_the_same_table_as_a_github_table() -> None:
    out = render_markdown([report([result(lost=37, holds=False), result(SER)])])
    lines = out.splitlines()
    assert lines[0] == "## The blog's ATM loses a deposit at READ COMMITTED (atm-lost-update)"
    table = [line for line in lines if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    assert cells[0][:4] == ["level", "clients", "tps server", "median ms"]
    assert cells[0][-2:] == ["lost\\_updates", "total\\_preserved"]
    assert cells[2] == ["read committed", "2", "1,000", "1.50", "4.25", "9.75", "0", "0", "0", "0", "0.00", "37", "VIOLATED"]
    assert cells[3][0] == "serializable" and cells[3][-1] == "holds"
    assert any(LOCK_WAIT_FOOTNOTE.split(",")[0].replace("_", "\\_") in line for line in lines)


def test_chart_plots_the_servers_tps_per_level_one_line_per_client_count_pgbench_dashed_in_the_same_colour() -> None:
    results = [result(level, clients, tool, committed=1000 * clients * (2 if level is RC else 1) + (100 if tool == "pgbench" else 0),
                      lost=clients * 10 if level is RC else 0)
               for level in (RC, SER) for clients in (1, 8) for tool in ("txnlab", "pgbench")]
    figure = chart_figure(report(results, pgbench=True))
    throughput, lost = figure.axes
    lines = {line.get_label(): line for line in throughput.get_lines()}
    assert list(lines) == ["1 client · txnlab", "1 client · pgbench", "8 clients · txnlab", "8 clients · pgbench"]
    assert list(lines["8 clients · txnlab"].get_ydata()) == [16000 / 5, 8000 / 5]  # rc, ser: server count / s
    assert list(lines["8 clients · pgbench"].get_ydata()) == [16100 / 5, 8100 / 5]
    assert lines["8 clients · pgbench"].get_linestyle() == "--" and lines["8 clients · txnlab"].get_linestyle() == "-"
    assert lines["8 clients · pgbench"].get_color() == lines["8 clients · txnlab"].get_color()
    assert lines["1 client · txnlab"].get_color() != lines["8 clients · txnlab"].get_color()
    assert [t.get_text() for t in throughput.get_xticklabels()] == ["read\ncommitted", "serializable"]
    assert lost.get_title() == "lost_updates"
    assert list({l.get_label(): l for l in lost.get_lines()}["8 clients · txnlab"].get_ydata()) == [80, 0]


def test_chart_without_server_counts_plots_the_clients_count_and_says_so() -> None:
    figure = chart_figure(report([result(committed=None, committed_client=500)]))
    assert list(figure.axes[0].get_lines()[0].get_ydata()) == [100.0]
    assert "client's count" in figure.axes[0].get_ylabel()


def test_a_report_without_results_still_renders_an_empty_table_and_chart() -> None:
    empty = report([result()])
    empty = BenchReport(empty.plan, empty.server_version, ())
    assert table_rows(render_text([empty], width=120)) == []
    assert ElementTree.fromstring(render_chart(empty, "svg")).tag == "{http://www.w3.org/2000/svg}svg"


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_chart_is_a_valid_file_and_the_same_results_give_the_same_bytes(fmt: str) -> None:
    bench = report([result(), result(SER, lost=0)])
    data = render_chart(bench, fmt)
    if fmt == "svg":
        assert ElementTree.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
    else:
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert render_chart(bench, fmt) == data


def test_html_page_loads_nothing_and_has_the_chart_inline_and_violations_marked() -> None:
    bench = report([result(lost=3, holds=False), result(SER)])
    page = render_html([bench], "txnlab bench: atm-lost-update")
    assert "Content-Security-Policy" in page and "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert svg_element(bench) in page and page.count("<svg") == 1
    assert '<tr class="bad"><td>read committed</td>' in page
    assert "<tr><td>serializable</td>" in page
    assert "lower bound" in page


def test_the_header_names_the_pgbench_that_ran_beside_txnlab() -> None:
    text = render_text([report([result(), result(tool="pgbench")], pgbench=True)], width=200)
    assert "PostgreSQL 18.1 · 5 s per run · up to 5 retries on 40001 and 40P01 · beside pgbench (PostgreSQL) 18.6" in text
    assert "beside" not in render_text([report([result()])], width=200)


def test_the_footnotes_say_what_the_failure_columns_count() -> None:
    text = " ".join(render_text([report([result()])], width=200).split())
    assert "every 40001 and 40P01 error met, each one either retried (retries) or the last try of a transaction " \
           "given up (failed)" in text
