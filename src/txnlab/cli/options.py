"""Options shared by the commands that run scenarios."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

import click

from txnlab.levels import ALL_LEVELS, Level
from txnlab.runner.lab import DEFAULT_STEP_TIMEOUT

LEVEL_CHOICES = ["ru", "rc", "rr", "ser", "all"]


def server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--step-timeout",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_STEP_TIMEOUT,
        show_default=True,
        help="Seconds a step may run or wait before txnlab cancels it and stops the run.",
    )(command)
    return click.option(
        "--dsn",
        metavar="DSN",
        help="PostgreSQL to use (else $TXNLAB_DSN, $DATABASE_URL, or the embedded server).",
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


def levels_from(choice: str) -> tuple[Level, ...]:
    return ALL_LEVELS if choice == "all" else (Level.parse(choice),)


def use_color(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def terminal_width() -> int:
    return max(80, min(shutil.get_terminal_size((120, 40)).columns, 180))
