"""`txnlab bench`: a scenario's workload as a real concurrent load, per isolation level and
client count; the table on stdout, the chart as a file, optionally an HTML page.

Every mistake a user can make is refused before the first run, in one line with exit 2
(a run lasts seconds per level and client count: a typo found afterwards wastes them).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from txnlab.bench.model import BenchPlan
from txnlab.bench.pgbench import locate_pgbench, pgbench_version
from txnlab.bench.run import benchable_workload, run_bench
from txnlab.cli.options import dsn_option, level_option, scenario_dir_option, terminal_width, user_catalogue
from txnlab.errors import ExitCode, UsageError
from txnlab.levels import Level
from txnlab.render.bench import BenchReport
from txnlab.render.bench.chart import render_chart
from txnlab.render.bench.html import render_html
from txnlab.render.bench.json import render_json
from txnlab.render.bench.markdown import render_markdown
from txnlab.render.bench.text import render_text
from txnlab.scenario import Catalogue, Scenario
from txnlab.server.connect import connect
from txnlab.server.selection import choose_server, resolve_dsn

DEFAULT_CLIENTS = "1,2,8"
DEFAULT_DURATION_S = 5.0
CHART_SUFFIXES = (".svg", ".png")
HTML_SUFFIXES = (".html", ".htm")


class ClientsType(click.ParamType):
    """`--clients 1,2,8`: client counts, positive whole numbers separated by commas; converts
    to a tuple in ascending order, without repeats."""

    name = "N,N,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",")]
        if not all(part.isdigit() and int(part) > 0 for part in parts):
            raise UsageError(f"--clients {value}: give client counts as positive whole numbers separated by "
                             f"commas, e.g. {DEFAULT_CLIENTS}")
        return tuple(sorted({int(part) for part in parts}))


@click.command("bench")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--clients", type=ClientsType(), default=DEFAULT_CLIENTS, show_default=True,
              help="Client counts to measure, each a run of its own per level.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help=f"How long each measured run lasts (default {DEFAULT_DURATION_S:g}).")
@click.option("--transactions", type=click.IntRange(min=1), metavar="N",
              help="Instead of --duration: each client runs N transactions (as pgbench's -t).")
@level_option
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Run a transaction again up to N times after a serialization failure (40001) or a "
                   "deadlock (40P01), as pgbench's --max-tries N+1.")
@click.option("--pgbench", "with_pgbench", is_flag=True,
              help="Also run the same SQL workload through pgbench; both rows side by side.")
@click.option("--seed", type=int, help="The random generator's seed (default: a fresh one per run).")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown"]), default="text",
              show_default=True, help="Output format of the table; json is documented in docs/bench.md.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.html",
              help="Also write an HTML page: the tables and the charts inline.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.svg|FILE.png",
              help="Where to write the chart (default bench-NAME.svg in the current directory; with several "
                   "NAMEs, -NAME is added before the suffix).")
@click.option("--no-chart", is_flag=True, help="Write no chart file.")
@scenario_dir_option
@dsn_option
def bench_command(names: tuple[str, ...], clients: tuple[int, ...], duration_s: float | None,
                  transactions: int | None, levels: tuple[Level, ...], retries: int, with_pgbench: bool,
                  seed: int | None, output_format: str, output: Path | None, chart: Path | None, no_chart: bool,
                  directory: Path | None, dsn: str | None) -> int:
    """Measure what each isolation level costs and what it loses, under concurrent load.

    Runs each scenario's `workload:` with each client count at each level, each run from a
    fresh copy of its data. Throughput is what the server counted (pg_stat_database), beside
    the client's own count; then latency, retries, serialization failures, deadlocks, lock
    waits, and the workload's measures (e.g. lost_updates) and invariants. See docs/bench.md.
    Exit 0 once every run is measured, whatever the invariants say (they are the findings).
    """
    if duration_s is not None and transactions is not None:
        raise UsageError("--duration and --transactions both say how long a run lasts; give one of them")
    if chart is not None and no_chart:
        raise UsageError("--chart and --no-chart contradict each other; give one of them")
    if chart is not None and chart.suffix.lower() not in CHART_SUFFIXES:
        raise UsageError(f"--chart {chart}: the chart file must end in .svg or .png")
    if output is not None and output.suffix.lower() not in HTML_SUFFIXES:
        raise UsageError(f"-o {output}: the output file must end in .html")
    charts: list[Path | None] = [None] * len(names) if no_chart else list(chart_paths(names, chart))
    for path in [*charts, output]:
        if path is not None:
            check_writable(path)
    scenarios = benchable(names, directory, with_pgbench)
    plans = [BenchPlan(scenario=scenario, levels=levels_of(scenario, levels), clients=clients,
                       duration_s=DEFAULT_DURATION_S if duration_s is None and transactions is None else duration_s,
                       transactions=transactions, retries=retries, pgbench=with_pgbench, seed=seed)
             for scenario in scenarios]

    server_dsn = resolve_dsn(choose_server(dsn))
    version = server_version(server_dsn)
    beside = pgbench_version(locate_pgbench()) if with_pgbench else None
    reports = []
    for plan, chart_path in zip(plans, charts):
        with ExitStack() as stack:
            progress = stack.enter_context(ProgressBar(runs(plan))) if sys.stderr.isatty() else None
            results = run_bench(server_dsn, plan, progress)
        report = BenchReport(plan, version, tuple(results), beside)
        reports.append(report)
        if output_format == "text":
            click.echo(render_text([report], width=terminal_width()))
        elif output_format == "markdown":
            click.echo(render_markdown([report]))
        if chart_path is not None:
            write_chart(report, chart_path, to_stdout=output_format == "text")
    if output_format == "json":
        click.echo(render_json(reports), nl=False)
    if output is not None:
        title = "txnlab bench: " + ", ".join(plan.scenario.name for plan in plans)
        write(output, render_html(reports, title).encode("utf-8"))
        click.echo(f"report: {output}", err=output_format != "text")
    return int(ExitCode.OK)


def benchable(names: Sequence[str], directory: Path | None, with_pgbench: bool) -> list[Scenario]:
    """The named scenarios, each one the engine can bench as asked (bench.run.benchable_workload),
    checked before the first run; UsageError (exit 2), naming the scenarios that have a workload
    when one has none."""
    catalogue = user_catalogue(directory)
    scenarios = [catalogue.resolve(name) for name in names]
    for scenario in scenarios:
        if scenario.workload is None:
            raise UsageError(f"{scenario.name} has no workload (a `workload:` section), so it cannot be benched; {with_workload(catalogue)}")
        benchable_workload(scenario, with_pgbench)
    return scenarios


def with_workload(catalogue: Catalogue) -> str:
    """Which scenarios can be benched, as the end of an error line."""
    names = sorted(name for name, scenario in catalogue.scenarios.items() if scenario.workload is not None)
    if not names:
        return "no scenario txnlab knows has one (docs/bench.md says how to write one)"
    return f"the scenarios with one: {', '.join(names)}"


def levels_of(scenario: Scenario, asked: tuple[Level, ...]) -> tuple[Level, ...]:
    """The asked levels the scenario runs at (`--level all`: the scenario's own levels);
    UsageError (exit 2) when it runs at none of them."""
    levels = tuple(level for level in asked if level in scenario.levels)
    if not levels:
        raise UsageError(f"--level: {scenario.name} runs at {', '.join(level.value for level in scenario.levels)} "
                         f"only, not at {', '.join(level.value for level in asked)}")
    return levels


def chart_paths(names: Sequence[str], chart: Path | None) -> list[Path]:
    """Each NAME's chart file, in order: `--chart` (with several names, `-NAME` before its
    suffix), else bench-NAME.svg in the current directory; a NAME that is a file's path counts
    by the file's stem (scenarios/x.yaml: bench-x.svg)."""
    stems = [Path(name).stem if Path(name).suffix else Path(name).name for name in names]
    if chart is None:
        return [Path(f"bench-{stem}.svg") for stem in stems]
    if len(stems) == 1:
        return [chart]
    return [chart.with_name(f"{chart.stem}-{stem}{chart.suffix}") for stem in stems]


def check_writable(path: Path) -> None:
    """Refuse, before the first run, a file that could not be written afterwards (its folder
    missing, read-only or on a read-only file system; the path a folder): UsageError, exit 2.
    It tries for real, as permissions alone do not tell (root, read-only mounts, /proc): an
    existing file is opened for writing and left as it was; a new one is created, then removed."""
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: the directory {folder} does not exist")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    existed = path.exists()
    try:
        with path.open("r+b" if existed else "xb"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    if not existed:
        path.unlink()


def write(path: Path, content: bytes) -> None:
    try:
        path.write_bytes(content)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def write_chart(report: BenchReport, path: Path, *, to_stdout: bool) -> None:
    """Draw and write one chart, then say where (`chart: PATH`: on stdout beside the text
    table, on stderr when stdout carries JSON or Markdown)."""
    write(path, render_chart(report, path.suffix.lower().lstrip(".")))
    click.echo(f"chart: {path}", err=not to_stdout)


def server_version(server_dsn: str) -> str:
    """The server's version as `SHOW server_version` gives it (the tables' header names it)."""
    conn = connect(server_dsn, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def runs(plan: BenchPlan) -> int:
    """How many measured runs the plan makes: levels x client counts x tools."""
    return len(plan.levels) * len(plan.clients) * (2 if plan.pgbench else 1)


class ProgressBar:
    """run_bench's progress(label, fraction) as one click progress bar on stderr for the whole
    plan, relabelled for each measured run (`[3/9] read committed · 8 clients · txnlab`);
    used only when stderr is a terminal."""

    STEPS = 1000  # per measured run

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = 0
        self.label: str | None = None
        self.bar: Any = click.progressbar(length=total * self.STEPS, label="", file=sys.stderr, show_eta=False)

    def __enter__(self) -> ProgressBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, label: str, fraction: float) -> None:
        if label != self.label:
            self.started += 1
            self.label = label
            self.bar.label = f"[{self.started}/{self.total}] {label}"
        done = (self.started - 1 + min(max(fraction, 0.0), 1.0)) * self.STEPS
        self.bar.update(max(round(done) - self.bar.pos, 0))
