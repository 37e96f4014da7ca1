"""`txnlab specs PATH...`: PostgreSQL's isolation specs, each compared with its expected output."""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import click

from txnlab import signals
from txnlab.cli.options import server_options
from txnlab.cli.run import describe_change
from txnlab.errors import ExitCode, UsageError
from txnlab.scenario.spec_source import load_spec
from txnlab.server.selection import choose_server, resolve_dsn
from txnlab.suite import report
from txnlab.suite.discovery import spec_cases
from txnlab.suite.lanes import FAILED, PlannedSpec, SpecResult, Suite, default_jobs, results_path
from txnlab.suite.runspec import spec_output

HELP = f"""Run PostgreSQL isolation specs and compare each output with its expected file.

\b
PATH: a .spec file, or a directory: its *.spec files, else those of its specs/
folder. Expected outputs come from --expected DIR, else from ../expected beside
each spec (PostgreSQL's src/test/isolation layout); NAME.out or any of the
alternatives NAME_0.out ... NAME_9.out may match, byte for byte, as with
pg_isolation_regress. Prints one line per spec (ok, FAILED, not applicable, with
its time), a summary, then a unified diff (-U3) per failure against the closest
expected file.

\b
Not applicable (not run, not a failure):
  - no expected output for the spec;
  - the spec uses PREPARE TRANSACTION and max_prepared_transactions is 0;
  - its output matches no expected file and one of its setup blocks failed for
    the server's side: a missing privilege (42501), feature (0A000), resource
    (classes 53, 58, XX); the line gives the server's error.

\b
Specs run side by side in --jobs lanes, each lane in a scratch database of its
own (default {default_jobs()} here; fewer when the server's max_connections cannot
hold them all: the summary says how many ran); specs that look at server-wide state (SLRU, WAL,
I/O statistics, ALTER SYSTEM, databases, tablespaces) run alone at the end.

\b
Exit codes: 0 every spec ok or not applicable, 1 any failed, 2 bad input (no
spec found, unreadable folder, a spec that does not parse: file:line), 3 the
server (unreachable, no scratch database, a connection of txnlab's own lost).
"""


def _folder(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """A DIR option's value as a Path; an empty one (`--results ""`) is refused rather than
    read as the current directory, which Path("") is."""
    if value == "":
        raise UsageError(f"--{param.name}: the folder is empty text; give a path (. for the current directory)")
    return None if value is None else Path(value)


@click.command("specs", help=HELP)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...", type=click.Path(path_type=Path))
@click.option("--expected", type=click.Path(), callback=_folder, metavar="DIR",
              help="Folder of expected outputs (NAME.out, NAME_N.out); default: ../expected beside the specs.")
@click.option("--results", type=click.Path(), callback=_folder, metavar="DIR",
              help="Write each spec's output to DIR/NAME.out (DIR is created; its parent must exist).")
@click.option("--jobs", "-j", type=click.IntRange(min=1, max=64), default=default_jobs(), show_default=True,
              metavar="N", help="Lanes: specs run at the same time, each lane in its own scratch database.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one document with every spec's status, time, diff (keys in the README).")
@server_options
def specs_command(paths: tuple[Path, ...], expected: Path | None, results: Path | None, jobs: int,
                  output_format: str, dsn: str | None, step_timeout: float) -> int:
    cases = spec_cases(list(paths), expected)
    planned = [PlannedSpec(case, load_spec(case.path)) for case in cases]  # every parse error before any run
    if results is not None:
        _make_folder(results)
    choice = choose_server(dsn)
    suite = Suite(resolve_dsn(choice), jobs, spec_output, undo_server_changes=choice.origin == "embedded",
                  results=results, step_timeout=step_timeout)
    started = time.perf_counter()
    done: list[SpecResult] = []
    written: dict[str, Path] = {}
    try:
        with closing(suite.run(planned)) as outcomes:
            for result in outcomes:
                done.append(result)
                if results is not None and result.output is not None:
                    written[result.planned.case.name] = _write(results, result)
                if output_format == "text":
                    click.echo(report.spec_line(result))
    except BaseException as exc:
        if (interrupted := signals.interruption(exc)) is not None:  # the CLI's last line says what is left, so it must know
            interrupted.left_behind = [describe_change(c) for c in suite.server_changes if not c.undone]
        raise
    finally:
        for change in suite.server_changes:
            click.echo(f"txnlab: warning: {describe_change(change)}", err=True)
    counts = report.totals(done, time.perf_counter() - started)
    if output_format == "json":
        click.echo(report.render_json(done, counts, suite.lanes, suite.server_version, written), nl=False)
    else:
        click.echo(report.summary_line(counts, suite.lanes))
        if counts.failed:
            click.echo("\n" + report.diffs(done), nl=False)
    return int(ExitCode.MISMATCH if any(r.status == FAILED for r in done) else ExitCode.OK)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--results {folder}: cannot create the directory: {exc.strerror}") from None


def _write(folder: Path, result: SpecResult) -> Path:
    path = results_path(folder, result.planned.case.name)
    try:
        path.write_text(result.output or "", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    return path
