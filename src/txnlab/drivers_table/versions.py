"""The installed version of a package the drivers table names (SQLAlchemy), as importlib.metadata reports it."""

from __future__ import annotations

import importlib.metadata


def installed(*distributions: str) -> str:
    """The version of the first of `distributions` that is installed, or "not installed"."""
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"

