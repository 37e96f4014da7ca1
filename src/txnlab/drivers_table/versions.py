"""The installed version of each Python driver, as importlib.metadata reports it."""

from __future__ import annotations

import importlib.metadata

# A driver's name as a scenario writes it -> the distributions that may provide it, in order
# (psycopg2 ships as psycopg2-binary or as psycopg2 built from source).
DRIVER_DISTRIBUTIONS = {
    "psycopg2": ("psycopg2-binary", "psycopg2"),
    "psycopg": ("psycopg",),
    "asyncpg": ("asyncpg",),
}

# The driver a session speaks through when its scenario names none.
DEFAULT_DRIVER = "psycopg2"


def installed(*distributions: str) -> str:
    """The version of the first of `distributions` that is installed, or "not installed"."""
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def driver_version(driver: str) -> str:
    """`driver` with its installed version, e.g. "psycopg2 2.9.13"."""
    return f"{driver} {installed(*DRIVER_DISTRIBUTIONS.get(driver, (driver,)))}"
