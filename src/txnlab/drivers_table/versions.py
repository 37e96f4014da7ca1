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


def installed(*distributions: str) -> str:
    """The version of the first of `distributions` that is installed, or "not installed"."""
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"

