"""`txnlab bench` as a user meets it: every usage mistake is one line and exit 2 before
anything runs, leaving no file and nothing on the server; a real short bench counts the ATM's
lost updates at READ COMMITTED and none at SERIALIZABLE, and writes its chart."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import psycopg2
import pytest

from conftest import leftovers
from txnlab.cli.bench import ProgressBar, chart_paths, levels_of
from txnlab.errors import UsageError
from txnlab.levels import ALL_LEVELS, Level
from txnlab.scenario import Catalogue

NO_WORKLOAD = """\
name: no-workload
title: A scenario without a workload
summary: Runs once, step by step, and cannot be benched.
sessions: {a: {}, b: {}}
steps:
  - {name: read, session: a, sql: SELECT 1}
  - {name: other, session: b, sql: SELECT 2}
expect: {all: {}}
"""


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's own empty folder as the current directory (where default charts go)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def assert_refused(cli, admin: psycopg2.extensions.connection, folder: Path, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    """`txnlab bench ARGS` exits 2 with one line containing `message`, and leaves nothing behind:
    no new file in `folder`, no scratch database or session on the server."""
    before = sorted(folder.rglob("*"))
    code, out, err = cli("bench", *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("txnlab: error: "), err
    assert message in err, err
    assert sorted(folder.rglob("*")) == before
    assert leftovers(admin, os.getpid()) == ([], [])


def test_bench_help_lists_its_options(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("bench", "--help")
    assert code == 0
    for option in ("--clients", "--duration", "--transactions", "--level", "--retries", "--pgbench", "--seed",
                   "--format", "--output", "--chart", "--no-chart", "--dir", "--dsn"):
        assert option in out


@pytest.mark.parametrize("clients", ["0", "1,0", "a", "1,,2", "-1", "2.5", ""])
def test_bench_refuses_client_counts_that_are_not_positive_whole_numbers(cli, admin, in_tmp: Path, clients: str) -> None:  # type: ignore[no-untyped-def]
    assert_refused(cli, admin, in_tmp, ["atm-lost-update", "--clients", clients],
                   "give client counts as positive whole numbers separated by commas")


@pytest.mark.parametrize(("args", "message"), [
    (["--duration", "1", "--transactions", "10"], "--duration and --transactions both say how long a run lasts"),
    (["--retries", "-1"], "Invalid value for '--retries': -1 is not in the range x>=0"),
    (["--duration", "0"], "Invalid value for '--duration'"),
    (["--transactions", "0"], "Invalid value for '--transactions'"),
    (["--format", "csv"], "Invalid value for '--format': 'csv' is not one of 'text', 'json', 'markdown'"),
    (["--chart", "chart.jpg"], "--chart chart.jpg: the chart file must end in .svg or .png"),
    (["--chart", "chart.svg", "--no-chart"], "--chart and --no-chart contradict each other"),
    (["-o", "report.pdf"], "-o report.pdf: the output file must end in .html"),
    (["--level", "snapshot"], "--level: unknown isolation level 'snapshot'"),
])
def test_bench_refuses_bad_options_in_one_line_before_running(cli, admin, in_tmp: Path, args: list[str],  # type: ignore[no-untyped-def]
                                                              message: str) -> None:
    assert_refused(cli, admin, in_tmp, ["atm-lost-update", *args], message)


def test_bench_refuses_an_unknown_scenario_with_the_closest_names(cli, admin, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    assert_refused(cli, admin, in_tmp, ["atm-lost-updat"],
                   "no scenario named 'atm-lost-updat'; did you mean atm-lost-update")


def test_bench_refuses_a_scenario_without_a_workload_and_names_those_with_one(cli, admin, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    (in_tmp / "no-workload.yaml").write_text(NO_WORKLOAD)
    benchable = sorted(name for name, s in Catalogue().scenarios.items() if s.workload is not None)
    expected = f"the scenarios with one: {', '.join(benchable)}" if benchable else "no scenario txnlab knows has one"
    assert_refused(cli, admin, in_tmp, ["no-workload.yaml"], f"no-workload has no workload (a `workload:` section), "
                                                             f"so it cannot be benched; {expected}")


def test_bench_refuses_pgbench_for_a_python_function_workload(cli, admin, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    """atm-retry-on-serialization-failure's workload is the blog's update_balance(), a Python
    function: pgbench runs SQL scripts only; the engine's refusal, before any run."""
    assert_refused(cli, admin, in_tmp, ["atm-retry-on-serialization-failure", "--pgbench"],
                   "pgbench runs SQL workloads only; atm-retry-on-serialization-failure's workload is Python "
                   "function update_balance")


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "missing/report.html"], "cannot write missing/report.html: the directory missing does not exist"),
    (["--chart", "missing/chart.svg"], "cannot write missing/chart.svg: the directory missing does not exist"),
    (["-o", "/proc/txnlab-bench.html"], "cannot write /proc/txnlab-bench.html: "),  # a folder no one may write to
    (["--chart", "/proc/txnlab-bench.png"], "cannot write /proc/txnlab-bench.png: "),
    (["--chart", "folder.svg"], "Invalid value for '--chart': File 'folder.svg' is a directory"),
])
def test_bench_refuses_an_output_it_could_not_write_before_the_first_run(cli, admin, in_tmp: Path, args: list[str],  # type: ignore[no-untyped-def]
                                                                          message: str) -> None:
    (in_tmp / "folder.svg").mkdir()
    assert_refused(cli, admin, in_tmp, ["atm-lost-update", *args], message)


def test_bench_refuses_a_default_chart_it_could_not_write(cli, admin, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    (in_tmp / "bench-atm-lost-update.svg").mkdir()  # where the default chart would go
    assert_refused(cli, admin, in_tmp, ["atm-lost-update"], "cannot write bench-atm-lost-update.svg: it is a directory")


def test_bench_leaves_an_existing_file_it_only_checked_untouched(cli, admin, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    kept = in_tmp / "report.html"
    kept.write_text("earlier report")
    code, _, err = cli("bench", "atm-lost-updat", "-o", str(kept))
    assert code == 2 and "no scenario named" in err
    assert kept.read_text() == "earlier report"


def everything_shown(master: int) -> str:
    """All a pseudo-terminal showed, its other end closed: the kernel hands written bytes to
    the master side asynchronously, so read until it reports the end (EIO on Linux)."""
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    return shown.decode()


def test_progress_bar_on_a_terminal_names_each_run_and_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    master, slave = pty.openpty()
    terminal = os.fdopen(slave, "w")
    monkeypatch.setattr(sys, "stderr", terminal)
    try:
        with ProgressBar(2) as progress:
            for label in ("read committed · 1 client · txnlab", "serializable · 1 client · txnlab"):
                for fraction in (0.0, 0.5, 1.0):
                    progress(label, fraction)
    finally:
        terminal.close()
    try:
        shown = everything_shown(master)
    finally:
        os.close(master)
    assert "[1/2] read committed · 1 client · txnlab" in shown
    assert "[2/2] serializable · 1 client · txnlab" in shown
    assert "25%" in shown and "100%" in shown


# The end-to-end test: a real short bench.
def test_bench_counts_lost_updates_at_read_committed_and_none_at_serializable_with_retries(cli, admin, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("bench", "atm-lost-update", "--clients", "1,2", "--duration", "1", "--level", "rc,ser",
                         "--retries", "5", "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert isinstance(document, list)  # issue 13: a list, one object per level and client count
    results = {(r["level"], r["clients"]): r for r in document}
    assert sorted(results) == [("read committed", 1), ("read committed", 2), ("serializable", 1), ("serializable", 2)]
    assert all(r["tool"] == "txnlab" and r["scenario"] == "atm-lost-update" for r in results.values())
    assert results["read committed", 2]["measures"]["lost_updates"] > 0
    assert results["read committed", 1]["measures"]["lost_updates"] == 0  # alone, nobody overwrites it
    for clients in (1, 2):
        serializable = results["serializable", clients]
        assert serializable["measures"]["lost_updates"] == 0
        assert all(serializable["invariants"].values())
        assert serializable["committed"] > 0 and serializable["tps"] > 0
    assert not all(results["read committed", 2]["invariants"].values())
    chart = in_tmp / "bench-atm-lost-update.svg"
    assert ElementTree.parse(chart).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert err == f"chart: {chart.name}\n"  # no progress bar: stderr is not a terminal
    assert leftovers(admin, os.getpid()) == ([], [])


def test_bench_on_an_unreachable_server_exits_3_in_one_line_and_writes_nothing(cli, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("bench", "atm-lost-update", "--dsn", "postgresql://nobody@127.0.0.1:1/postgres", "-o", "r.html")
    assert (code, out) == (3, "")
    assert err.count("\n") == 1 and err.startswith("txnlab: error: cannot connect to PostgreSQL"), err
    assert list(in_tmp.iterdir()) == []


def test_ctrl_c_mid_bench_exits_130_and_leaves_no_session_scratch_database_or_chart(
    tmp_path: Path, server_dsn: str, admin
) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "txnlab", "bench", "atm-lost-update", "--clients", "2", "--duration", "30",
         "--level", "rc"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until both clients are at work in the scratch database
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE %s AND state = 'active'",
                        [f"txnlab\\_scratch\\_{process.pid}\\_%"])
            if cur.fetchone()[0] >= 2:
                break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail(f"the clients never started: {process.communicate()}")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "txnlab: interrupted by SIGINT (Ctrl-C); nothing was left behind"
    assert "Traceback" not in err and out == ""
    assert leftovers(admin, process.pid) == ([], [])
    assert list(tmp_path.iterdir()) == []


def test_bench_text_prints_the_table_and_writes_the_png_chart_and_the_html_page(cli, in_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("bench", "atm-lost-update", "--clients", "2", "--duration", "0.5", "--level", "rc",
                         "--chart", "atm.png", "-o", "atm.html")
    assert code == 0, err
    assert "read committed" in out and "lost" in out and "VIOLATED" in out
    assert out.rstrip().endswith("chart: atm.png\nreport: atm.html")
    assert (in_tmp / "atm.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = (in_tmp / "atm.html").read_text()
    assert page.count("<svg") == 1 and "read committed" in page


def test_levels_are_the_asked_ones_the_scenario_runs_at_and_none_is_refused() -> None:
    scenario = dataclasses.replace(Catalogue().resolve("atm-lost-update"), levels=(Level.REPEATABLE_READ, Level.SERIALIZABLE))
    assert levels_of(scenario, ALL_LEVELS) == (Level.REPEATABLE_READ, Level.SERIALIZABLE)
    with pytest.raises(UsageError, match="atm-lost-update runs at repeatable read, serializable only, not at read committed"):
        levels_of(scenario, (Level.READ_COMMITTED,))


def test_the_cli_starts_without_importing_matplotlib() -> None:
    imported = subprocess.run([sys.executable, "-c", "import sys, txnlab.cli; print('matplotlib' in sys.modules)"],
                              capture_output=True, text=True, check=True).stdout
    assert imported == "False\n"


def test_chart_paths_default_to_bench_name_svg_and_add_the_name_to_chart_with_several_names() -> None:
    assert chart_paths(["scenarios/x.yaml", "atm-lost-update"], None) == [Path("bench-x.svg"),
                                                                           Path("bench-atm-lost-update.svg")]
    assert chart_paths(["a", "b"], Path("out/c.png")) == [Path("out/c-a.png"), Path("out/c-b.png")]
    assert chart_paths(["a"], Path("out/c.png")) == [Path("out/c.png")]
