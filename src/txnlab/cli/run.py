"""`txnlab run`, `txnlab matrix` and `txnlab demo`: run scenarios on a real server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from txnlab import signals
from txnlab.cli.options import (
    color_option,
    driver_option,
    choose,
    format_option,
    level_option,
    permutations_option,
    refuse_level_for_specs,
    require_terminal,
    scenario_dir_option,
    history_option,
    server_options,
    terminal_width,
    through_driver,
    use_color,
    user_catalogue,
)
from txnlab.drivers_table.bench import drivers_table
from txnlab.drivers_table.render import html_section, render_markdown
from txnlab.errors import ExitCode, TxnlabError, UsageError
from txnlab.history.export import render_elle
from txnlab.levels import ALL_LEVELS, Level
from txnlab.render import html, markdown, repeats, text
from txnlab.render import json as json_render
from txnlab.render.catalogue_page import render_catalogue_page
from txnlab.render.describe import named_title, run_title, runs_phrase
from txnlab.render.fit import wrap_paragraphs
from txnlab.render.isolationtester import render_isolationtester
from txnlab.render.report import RunReport
from txnlab.runner.execute import sql_failure
from txnlab.runner.isolationtester import session_lost
from txnlab.runner.lab import Lab, open_lab
from txnlab.scenario import Catalogue, Scenario
from txnlab.timeline import Timeline
from txnlab.server.footprint import ServerChange
from txnlab.server.selection import choose_server, resolve_dsn
from txnlab.cli.workshop import Workshop
from txnlab.workflow import Cell, Chosen, cells, run_cell, run_cells

# The headline demo: the blog's read-then-write ATM, then the three ways to fix it.
DEMO_SCENARIOS = (
    "atm-lost-update",
    "atm-atomic-update",
    "atm-select-for-update",
    "atm-retry-on-serialization-failure",
)


@contextmanager
def lab_on_server(dsn: str | None, step_timeout: float, history: bool = True) -> Iterator[Lab]:
    """A lab on the chosen server (recording each run's history unless `history` is False); afterwards, one warning line on stderr per change the runs
    left on the server outside their scratch database (see txnlab.server.footprint)."""
    changes: list[ServerChange] = []
    try:
        choice = choose_server(dsn)
        with open_lab(resolve_dsn(choice), server_changes=changes, undo_server_changes=choice.origin == "embedded",
                      step_timeout=step_timeout, history=history) as lab:
            yield lab
    except BaseException as exc:
        if (interrupted := signals.interruption(exc)) is not None:  # its last line says what is left, so it must know
            interrupted.left_behind = [describe_change(change) for change in changes if not change.undone]
        raise
    finally:
        for change in changes:
            click.echo(f"txnlab: warning: {describe_change(change)}", err=True)


def describe_change(change: ServerChange) -> str:
    """One calm sentence: what changed outside the scratch database during the run, and what
    txnlab did about it. The catalogs do not say who made a change, so neither does this."""
    if change.kind == "role/database setting":
        role, database, setting = change.key
        scope = " in ".join(filter(None, [f'role "{role}"' if role else "", f'database "{database}"' if database else ""]))
        what, verb = f"{setting} for {scope}", "reset"
    elif change.kind == "setting":
        what, verb = f"{change.key[0]} with ALTER SYSTEM", "reset"
    else:
        what, verb = f'{change.kind} "{change.key[0]}"', "dropped"
    if change.action == "created" and "setting" in change.kind:
        did = f"{what.replace(' ', f' = {change.after} ', 1)} was set during the run"
    else:
        did = f"{what} was {change.action} during the run"
    if change.action == "created":
        if not change.undone and not change.problem:
            return f"{did}; txnlab left it, since on a server it did not start it cannot tell a run's work from another client's"
        return f"{did}; " + (f"txnlab {verb} it" if change.undone else f"txnlab could not undo it: {change.problem}")
    if change.action == "changed":
        return f"{did} (was {change.before or 'unset'}, now {change.after or 'unset'}); it existed before, so it is left as it is"
    if change.undone:
        return f"{did}; txnlab recreated it, empty"
    return f"{did}; it existed before and cannot be restored" + (f" ({change.problem})" if change.problem else "")


def _execute(planned: Sequence[Cell], dsn: str | None, step_timeout: float, on_report=None,  # type: ignore[no-untyped-def]
             chosen: Chosen | None = None, history: bool = True) -> list[RunReport]:
    reports = []
    with lab_on_server(dsn, step_timeout, history) as lab:
        for report in run_cells(lab, planned, chosen):
            reports.append(report)
            if on_report is not None:
                on_report(report)
    return reports


def _check_writable(output: Path) -> None:
    """Refuse, before any run, an output file whose folder does not exist (a typo, usually)."""
    if not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: the directory {output.parent} does not exist")


def _write(output: Path, text_: str) -> None:
    try:
        output.write_text(text_, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None


def _exit_code(reports: Sequence[RunReport]) -> int:
    """3 (after everything was shown) when a run could not run on this server, with one line
    on stderr saying why; 3 when a `.spec` stopped at a session the server had closed (see
    runner.isolationtester.session_lost); 2 or 3 when its setup failed (see `setup_failure`); else 1 if an
    observation differs from its expectation; else 0."""
    for report in reports:
        if report.scenario.isolationtester and (
                failure := session_lost(report.timeline) or setup_failure(report.scenario, report.timeline)):
            raise failure
    unable = [r for r in reports if r.verdict.could_not_run]
    if unable:
        first = unable[0].verdict
        click.echo(f"txnlab: error: {len(unable)} of {len(reports)} runs could not run on this server; "
                   f"{first.scenario} at {first.level.value}: {first.could_not_run}", err=True)
        return int(ExitCode.SERVER)
    judged = [r for r in reports if r.verdict.unjudged is None]  # a run no expectation applies to differs from none
    return int(ExitCode.OK if all(r.verdict.matches_expectation for r in judged) else ExitCode.MISMATCH)


def _resolve(names: Sequence[str], directory: Path | None = None) -> list[Scenario]:
    catalogue = user_catalogue(directory)
    return [catalogue.resolve(name) for name in names]


@click.command("run")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@level_option
@click.option("--step", "step_through", is_flag=True,
              help="Workshop mode: pause before each step (Enter runs it), then show what happened.")
@click.option("--predict", is_flag=True, help="With --step: ask the room to predict each step (ok, block, fail).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Run each scenario and level N times; show each distinct timeline once, with what it matched.")
@permutations_option
@driver_option
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown", "isolationtester", "elle"]),
              default="text", show_default=True,
              help="Output format; json follows the schema documented in the README; isolationtester prints "
                   "what PostgreSQL's isolationtester prints, every permutation; elle exports one run's history "
                   "in Elle's rw-register form (docs/history.md).")
@color_option
@scenario_dir_option
@history_option
@server_options
def run_command(names: tuple[str, ...], levels: tuple[Level, ...], step_through: bool, predict: bool,
                repeat: int, permutations: tuple[str, ...], max_permutations: int, driver: str | None,
                output_format: str, color: bool | None, directory: Path | None, history: bool, dsn: str | None,
                step_timeout: float) -> int:
    """Run scenarios (names, yours or the catalogue's, or file paths) and show their timelines.

    Each run prints one column per session and one row per event: results,
    waits (and for whom), late completions, errors with their SQLSTATE, then
    whether PostgreSQL did what the scenario expects. With --step, a presenter
    steps through it on a projector.
    """
    if (step_through or predict) and output_format != "text":
        raise UsageError(f"--step shows each step on the terminal; it cannot print --format {output_format}")
    if output_format == "isolationtester" and repeat > 1:
        raise UsageError("--format isolationtester prints one run of every permutation; it cannot --repeat")
    if output_format == "elle" and repeat > 1:
        raise UsageError("--format elle exports the history of one run; it cannot --repeat")
    if output_format == "elle" and not history:
        raise UsageError("--format elle exports the run's history, and --no-history records none")
    if (step_through or predict) and repeat > 1:
        raise UsageError("--step shows one run at a time; it cannot --repeat")
    one_order = "--step" if step_through or predict else "--repeat" if repeat > 1 else None
    if one_order and permutations:
        raise UsageError(f"{one_order} follows one order of steps; it cannot run --permutations")
    if step_through or predict:
        require_terminal("--step")
    scenarios = through_driver(_resolve(names, directory), driver)
    refuse_level_for_specs(scenarios)
    if output_format == "isolationtester" and (other := next((s for s in scenarios if not s.isolationtester), None)):
        raise UsageError(f"--format isolationtester prints what isolationtester prints for a .spec; "
                         f"{other.name} is not a .spec")
    spec = next((s for s in scenarios if s.isolationtester), None)
    if one_order and spec is not None:
        raise UsageError(f"{one_order} follows one order of steps; {spec.source} is a .spec, which runs every "
                         "permutation as isolationtester does")
    chosen = choose(scenarios, permutations, max_permutations)
    planned = cells(scenarios, levels)
    if not planned:
        raise UsageError(f"none of the scenarios runs at {', '.join(level.value for level in levels)}")
    if step_through or predict:
        return _step_through(planned, predict, use_color(color), dsn, step_timeout, history)
    if output_format == "isolationtester":
        return _isolationtester(planned, dsn, step_timeout, chosen)
    if output_format == "elle":
        return _elle(planned, dsn, step_timeout, chosen)
    if repeat > 1:
        return _repeat(planned, repeat, output_format, color, dsn, step_timeout, history)
    if output_format == "text":
        width, colored = terminal_width(), use_color(color)
        reports = _execute(
            planned, dsn, step_timeout,
            on_report=lambda r: click.echo(text.render_timeline(r, width=width, color=colored) + "\n"), chosen=chosen,
            history=history,
        )
        if len(reports) > 1:
            click.echo(text.render_summary(reports, width=width, color=colored))
    else:
        reports = _execute(planned, dsn, step_timeout, chosen=chosen, history=history)
        render = json_render.render_runs if output_format == "json" else markdown.render_runs
        click.echo(render(reports), nl=False)
    return _exit_code(reports)


def _isolationtester(planned: Sequence[Cell], dsn: str | None, step_timeout: float, chosen: Chosen) -> int:
    """`run --format isolationtester`: every permutation of each scenario, printed as
    isolationtester prints it (a failed setup ends a spec's output, as there; exit 2; a step
    sent to a session the server closed ends it too: exit 3)."""
    with lab_on_server(dsn, step_timeout) as lab:
        for scenario, level in planned:
            timelines = lab.run_permutations(scenario, level, chosen.get(scenario.source))
            click.echo(render_isolationtester(scenario, timelines), nl=False)
            if timelines and (failure := session_lost(timelines[-1]) or setup_failure(scenario, timelines[-1])):
                raise failure
    return int(ExitCode.OK)


def _elle(planned: Sequence[Cell], dsn: str | None, step_timeout: float, chosen: Chosen) -> int:
    """`run --format elle`: one run's history in Elle's rw-register form (history/export.py).
    Asked for several runs, or for a `.spec` (which records no history), one line and exit 2
    before anything runs; a run that recorded none, one line and exit 2 after it."""
    spec = next((scenario for scenario, _ in planned if scenario.isolationtester), None)
    if spec is not None:
        raise UsageError(f"--format elle exports a run's history; {spec.source} is a .spec, whose runs record none")
    count = sum(len(chosen.get(scenario.source, ((),))) for scenario, _ in planned)
    if count != 1:
        raise UsageError(f"--format elle exports the history of one run, and this asks for {count}: "
                         "name one scenario, one --level and at most one --permutations order")
    reports = _execute(planned, dsn, step_timeout, chosen=chosen)
    report = reports[0]
    if report.analysis is None and report.verdict.could_not_run is None:
        raise UsageError(f"--format elle: {run_title(report)} recorded no history, so there is nothing to export")
    if report.analysis is not None:
        click.echo(render_elle(report.analysis, report.timeline), nl=False)
    return _exit_code(reports)


def setup_failure(scenario: Scenario, timeline: Timeline) -> TxnlabError | None:
    """A `.spec` run's failed setup SQL as the one-line error it ends the command with, after
    the output that shows it, as isolationtester stops there: exit 3 for the server's side (a
    missing privilege...), else 2 (see runner.execute.sql_failure); None when the setup ran."""
    failed = next((e for e in timeline.setup if e.error is not None), None)
    if failed is None or failed.error is None:
        return None
    return sql_failure(scenario.where(failed.step), "setup", failed.error)


def _repeat(planned: Sequence[Cell], repeat: int, output_format: str, color: bool | None, dsn: str | None,
            step_timeout: float, history: bool) -> int:
    """`run --repeat N`: each cell N times in a row; text shows each cell as soon as its runs are done.
    The exit code is that of all the runs together: one that matches neither its expectation nor
    an accepted alternative makes it 1."""
    width, colored = terminal_width(), use_color(color)
    done: list[RunReport] = []

    def show(report: RunReport) -> None:
        done.append(report)
        if output_format == "text" and len(done) % repeat == 0:
            click.echo(repeats.render_text(repeats.group(done[-repeat:], repeat)[0], width=width, color=colored) + "\n")

    reports = _execute([cell for cell in planned for _ in range(repeat)], dsn, step_timeout, on_report=show,
                       history=history)
    grouped = repeats.group(reports, repeat)
    if output_format == "text":
        if len(grouped) > 1:
            click.echo(repeats.render_text_summary(grouped, width=width))
    else:
        render = repeats.render_json if output_format == "json" else repeats.render_markdown
        click.echo(render(grouped), nl=False)
    return _exit_code(reports)


@click.command("matrix")
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.option("--tag", help="Only scenarios with this tag.")
@click.option("--suite", help="A suite of anomaly scenarios (e.g. hermitage), shown as an anomaly table.")
@level_option
@permutations_option
@driver_option
@format_option
@color_option
@scenario_dir_option
@history_option
@server_options
def matrix_command(names: tuple[str, ...], tag: str | None, suite: str | None, levels: tuple[Level, ...],
                   permutations: tuple[str, ...], max_permutations: int, driver: str | None, output_format: str,
                   color: bool | None, directory: Path | None, history: bool, dsn: str | None,
                   step_timeout: float) -> int:
    """Run scenarios at every level; show the observed outcome against the expectation.

    Without NAME, the whole catalogue. With --suite, the scenarios tagged with the
    suite's name, as a table of levels by anomalies: possible, prevented, blocks or
    aborts, each derived from what the server did.
    """
    catalogue = user_catalogue(directory)
    if names:
        scenarios = [catalogue.resolve(name) for name in names]
    elif suite or tag:
        scenarios = catalogue.with_tag(suite or tag or "")
    else:
        scenarios = list(catalogue.scenarios.values())
    if permutations and suite:
        raise UsageError("--suite shows each anomaly once per level; it cannot run --permutations")
    selection = None if names else f"of suite {suite}" if suite else f"tagged {tag}" if tag else "in the catalogue"
    scenarios = through_driver(scenarios, driver, selection=selection)
    refuse_level_for_specs(scenarios)
    chosen = choose(scenarios, permutations, max_permutations)
    reports = _execute(cells(scenarios, levels), dsn, step_timeout, chosen=chosen, history=history)
    if output_format == "json":
        click.echo(json_render.render_matrix(reports), nl=False)
    elif output_format == "markdown":
        grid = markdown.render_anomaly_table if suite else markdown.render_matrix
        click.echo(grid(reports), nl=False)
    else:
        grid = text.render_anomaly_table if suite else text.render_matrix
        click.echo(grid(reports, width=terminal_width(), color=use_color(color)), nl=False)
    return _exit_code(reports)


@click.command("demo")
@color_option
@server_options
def demo_command(color: bool | None, dsn: str | None, step_timeout: float) -> int:
    """The headline demo: the 2017 blog's ATM loses money, then three fixes.

    Runs the blog's read-then-write update_balance() and each fix at every
    isolation level, prints the lost update step by step at READ COMMITTED (the
    default level), then what every level does with the ATM and with each fix.
    """
    scenarios = _resolve(DEMO_SCENARIOS)
    colored, width = use_color(color), terminal_width()
    style = text.TextStyle(colored)
    headline = scenarios[0]
    click.echo(style(wrap_paragraphs(headline.title, width), bold=True))
    click.echo(wrap_paragraphs(headline.summary.strip(), width) + "\n")
    reports = _execute(cells(scenarios, ALL_LEVELS), dsn, step_timeout)
    default_level = next(r for r in reports if r.scenario is headline and r.verdict.level is Level.READ_COMMITTED)
    click.echo(text.render_timeline(default_level, width=width, color=colored) + "\n")
    click.echo(style("The same ATMs at every level, and the three fixes:", bold=True))
    click.echo(text.render_matrix(reports, width=width, color=colored))
    for scenario in scenarios:
        click.echo(wrap_paragraphs(named_title(scenario), width, indent="  "))
    click.echo("\nStep through any of them: txnlab run NAME --level rr --step")
    return _exit_code(reports)


def _step_through(planned: Sequence[Cell], predict: bool, colored: bool, dsn: str | None, step_timeout: float,
                  history: bool) -> int:
    """Workshop mode: one cell at a time, each step announced, paused, then revealed."""
    width, style = terminal_width(), text.TextStyle(colored)
    reports = []
    with lab_on_server(dsn, step_timeout, history) as lab:
        for scenario, level in planned:
            click.echo(style(f"{scenario.name} at {level.sql}", bold=True, underline=True))
            click.echo(style(wrap_paragraphs(scenario.title, width), bold=True))
            click.echo(wrap_paragraphs(scenario.summary.strip(), width) + "\n")
            workshop = Workshop(scenario, level, predict, style, width)
            report = run_cell(lab, scenario, level, watcher=workshop)
            reports.append(report)
            click.echo(text.render_timeline(report, width=width, color=colored))
            if (closing := workshop.closing_line()) is not None:
                click.echo(style(wrap_paragraphs(closing, width), bold=True))
            click.echo()
    return _exit_code(reports)


@click.command("docs")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/catalogue.md"),
              show_default=True, help="Where to write the page.")
@server_options
def docs_command(output: Path, dsn: str | None, step_timeout: float) -> int:
    """Regenerate the living catalogue page from the scenarios and what the server did."""
    _check_writable(output)
    reports = _execute(cells(Catalogue().scenarios.values(), ALL_LEVELS), dsn, step_timeout)
    _write(output, render_catalogue_page(reports))
    click.echo(f"Wrote {output} ({runs_phrase(len(reports))}).")
    return _exit_code(reports)


@click.command("report")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="FILE.html: one self-contained page (swimlanes, verdicts, explanations); FILE.md: Markdown.")
@level_option
@permutations_option
@driver_option
@click.option("--drivers", "with_drivers", is_flag=True,
              help="Add `txnlab drivers`' table, derived live on the same server, as a last section.")
@scenario_dir_option
@history_option
@server_options
def report_command(names: tuple[str, ...], output: Path, levels: tuple[Level, ...], permutations: tuple[str, ...],
                   max_permutations: int, driver: str | None, with_drivers: bool, directory: Path | None,
                   history: bool, dsn: str | None,
                   step_timeout: float) -> int:
    """Write a handout: each scenario at each level, as HTML (no network needed to view it) or Markdown."""
    if output.suffix.lower() not in (".html", ".htm", ".md"):
        raise UsageError(f"cannot write {output}: the output file must end in .html or .md")
    _check_writable(output)
    scenarios = through_driver(_resolve(names, directory), driver)
    refuse_level_for_specs(scenarios)
    chosen = choose(scenarios, permutations, max_permutations)
    reports = _execute(cells(scenarios, levels), dsn, step_timeout, chosen=chosen, history=history)
    title = scenarios[0].title if len(scenarios) == 1 else "txnlab: " + ", ".join(s.name for s in scenarios)
    drivers = drivers_table(dsn) if with_drivers else None
    if output.suffix.lower() != ".md":
        page = html.render_report(reports, title, [html_section(drivers)] if drivers else [])
    else:
        page = markdown.render_handout(reports) + (f"\n\n## Python drivers\n\n{render_markdown(drivers)}\n" if drivers else "")
    _write(output, page)
    click.echo(f"Wrote {output} ({runs_phrase(len(reports))}).")
    return _exit_code(reports)
