"""Options shared by the commands that run scenarios."""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from txnlab.errors import UsageError, did_you_mean
from txnlab.levels import ALL_LEVELS, Level
from txnlab.runner.drivers import DRIVERS
from txnlab.runner.drivers import NAMES as DRIVER_NAMES
from txnlab.runner.lab import DEFAULT_STEP_TIMEOUT
from txnlab.scenario import Catalogue
from txnlab.scenario.catalogue import user_directories
from txnlab.scenario.chosen_permutations import DEFAULT_LIMIT, chosen_permutations
from txnlab.scenario.model import Scenario

LEVEL_HELP = (
    "Isolation levels: ru, rc, rr, ser, their names (\"read committed\", serializable), "
    "a comma-separated list of them (rc,rr), or all."
)


class LevelsType(click.ParamType):
    """`--level`: one level or a comma-separated list, short names or PostgreSQL's, or `all`.

    Converts to a tuple of `Level` in PostgreSQL's order, without repeats."""

    name = "LEVELS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[Level, ...]:
        if isinstance(value, tuple):
            return value
        wanted: set[Level] = set()
        for part in str(value).split(","):
            if part.strip().lower() == "all":
                wanted.update(ALL_LEVELS)
                continue
            try:
                wanted.add(Level.parse(part))
            except UsageError as exc:  # one line, exit 2, like every bad input
                raise UsageError(f"--level: {exc}") from None
        return tuple(level for level in ALL_LEVELS if level in wanted)


def level_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--level LEVELS` (default all four), converted to a tuple of `Level`."""
    return click.option("--level", "levels", type=LevelsType(), default="all", show_default=True,
                        help=LEVEL_HELP)(command)


def scenario_dir_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--dir DIR`: a folder of the user's scenarios, found before all others."""
    return click.option(
        "--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
        help="A folder of your scenarios, searched first (then ./scenarios, then the user data folder).",
    )(command)


def user_catalogue(directory: Path | None) -> Catalogue:
    """The catalogue with the user's scenarios (--dir, ./scenarios, the user data folder)."""
    if directory is not None and not directory.is_dir():
        raise UsageError(f"--dir {directory}: no such directory")
    return Catalogue(user=user_directories(directory))


def require_terminal(what: str) -> None:
    """Refuse to start an interactive command whose stdin is not a terminal (piped, /dev/null,
    a CI job): its questions could never be answered. Raises UsageError (exit 2)."""
    if not sys.stdin.isatty():
        raise UsageError(f"{what} is interactive and needs a terminal, but stdin is not one")


def dsn_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--dsn DSN`: the server to use (see txnlab.server.selection for the order of choices)."""
    return click.option(
        "--dsn",
        metavar="DSN",
        help="PostgreSQL to use (else $TXNLAB_DSN, $DATABASE_URL, or the embedded server).",
    )(command)


def server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--dsn DSN` and `--step-timeout SECONDS`: the options of the commands that run scenarios step by step."""
    command = click.option(
        "--step-timeout",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_STEP_TIMEOUT,
        show_default=True,
        help="Seconds a step may run or wait before txnlab cancels it and stops the run (a .spec's "
             "permutation goes on after the cancel, as isolationtester's does).",
    )(command)
    return dsn_option(command)


def driver_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--driver NAME`: run every session of driver-neutral scenarios through that driver."""
    return click.option(
        "--driver", metavar="|".join(DRIVER_NAMES),
        help="Run every session through this Python driver (driver-neutral scenarios: SQL scenarios whose "
             "sessions pin no driver; multi-driver Python scenarios that declare it; see docs/scenario-format.md).",
    )(command)


def through_driver(scenarios: Sequence[Scenario], driver: str | None, *, selection: str | None = None) -> list[Scenario]:
    """`scenarios` run with `--driver driver` (None: as they are; see Scenario.through).

    Named scenarios (`selection` None) must accept it (Scenario.accepts_driver): UsageError,
    one line saying why, otherwise. From a selection (`selection` says which, e.g. "tagged
    asyncpg") the others are left out, and one line on stderr says how many and why; a
    UsageError when none is left. An unknown driver is a UsageError naming the drivers."""
    if driver is None:
        return list(scenarios)
    if driver not in DRIVERS:
        raise UsageError(f"--driver {driver}: unknown driver; {did_you_mean(driver, DRIVERS)}choose one of {', '.join(DRIVERS)}")
    refused = [s for s in scenarios if not s.accepts_driver(driver)]
    if refused and selection is None:
        raise UsageError(f"--driver {driver}: {refused[0].name} is not driver-neutral: {refused[0].not_driver_neutral}")
    if refused:
        why = f"not driver-neutral nor written for {driver} ({_kinds(refused)})"
        if len(refused) == len(scenarios):
            raise UsageError(f"--driver {driver} runs none of the {len(scenarios)} scenarios {selection}: "
                             f"{'it is' if len(refused) == 1 else 'each is'} {why}")
        click.echo(f"txnlab: --driver {driver} leaves out {len(refused)} of the {len(scenarios)} scenarios "
                   f"{selection}: {why}", err=True)
    return [s.through(driver) for s in scenarios if s.accepts_driver(driver)]


def _kinds(scenarios: Sequence[Scenario]) -> str:
    """How many of `scenarios` are of each kind that --driver cannot re-point, e.g.
    "3 Python, 2 .spec, 1 pinning a driver"."""
    kinds = Counter("Python" if s.play is not None else ".spec" if s.isolationtester else "pinning a driver"
                    for s in scenarios)
    return ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())


def history_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--history/--no-history",
        default=True,
        show_default=True,
        help="Record what each transaction read and wrote, to derive and explain its anomalies "
             "(--no-history: runs cost a little less, and nothing is derived).",
    )(command)


def format_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json", "markdown"]),
        default="text",
        show_default=True,
        help="Output format; json follows the schema documented in the README.",
    )(command)


def color_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--color/--no-color",
        default=None,
        help="Colour the output (default: on for a terminal, off when piped or NO_COLOR is set).",
    )(command)


def use_color(flag: bool | None) -> bool:
    """Colour: the flag, else on when stdout is a terminal and NO_COLOR is unset."""
    if flag is not None:
        return flag
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


# Text output is fitted to the terminal (or $COLUMNS), within these bounds; 120 when piped.
MIN_WIDTH, MAX_WIDTH, PIPED_WIDTH = 40, 180, 120


def terminal_width() -> int:
    """Display columns text output may use: $COLUMNS, else the terminal's width, else 120."""
    return max(MIN_WIDTH, min(shutil.get_terminal_size((PIPED_WIDTH, 40)).columns, MAX_WIDTH))


PERMUTATIONS_HELP = (
    "Run each scenario in other orders: 'all' (every interleaving of its sessions' steps, in "
    "isolationtester's order) or an order of step names separated by spaces (repeat the option "
    "for several). Only the scenario's own order is judged by its expectations."
)


def permutations_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--permutations all|'STEP STEP ...'` (repeatable) and `--max-permutations N`."""
    command = click.option(
        "--max-permutations", type=click.IntRange(min=1), default=DEFAULT_LIMIT, show_default=True, metavar="N",
        help="With --permutations all: refuse a scenario with more interleavings than this.",
    )(command)
    return click.option("--permutations", "permutations", multiple=True, metavar="all|'STEP STEP ...'",
                        help=PERMUTATIONS_HELP)(command)


def choose(scenarios: Sequence[Scenario], requests: Sequence[str], limit: int) -> dict[Path, tuple[tuple[str, ...], ...]]:
    """The permutations `--permutations` asks of each scenario (none: an empty mapping);
    UsageError (exit 2) before anything runs when one cannot be run (see chosen_permutations)."""
    chosen = {}
    for scenario in scenarios:
        permutations = chosen_permutations(scenario, requests, limit)
        if permutations is not None:
            chosen[scenario.source] = permutations
    return chosen


def refuse_level_for_specs(scenarios: Sequence[Scenario]) -> None:
    """Refuse `--level` given on the command line with a `.spec` (UsageError, exit 2): txnlab
    sets no level for a spec, whose sessions set their own (`BEGIN ISOLATION LEVEL ...`)."""
    context = click.get_current_context()
    if context.get_parameter_source("levels") is not ParameterSource.COMMANDLINE:
        return
    spec = next((s for s in scenarios if s.isolationtester), None)
    if spec is not None:
        raise UsageError(f"--level: {spec.source} is a .spec, and a .spec sets its own isolation levels")
