"""The drivers a scenario's session can speak through, by the name a scenario writes (`driver:`).

Each is a runner.drivers.base.DriverSession subclass in a module of its own, imported the
first time a scenario asks for it: a run of psycopg2 sessions never loads psycopg 3 or
asyncpg, and a driver whose module or library is missing fails only the scenarios that use it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import import_module
from typing import TYPE_CHECKING

from txnlab.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from txnlab.runner.drivers.base import DriverSession

DEFAULT_DRIVER = "psycopg2"
# name -> (module, class), in the order the docs and error messages list them
_CLASSES = {
    "psycopg2": ("txnlab.runner.drivers.psycopg2", "Psycopg2Session"),
    "psycopg": ("txnlab.runner.drivers.psycopg", "PsycopgSession"),
    "asyncpg": ("txnlab.runner.drivers.asyncpg", "AsyncpgSession"),
}
NAMES: tuple[str, ...] = tuple(_CLASSES)


class _Drivers(Mapping[str, "type[DriverSession]"]):
    """name -> DriverSession subclass; the class's module is imported on first lookup.

    Raises UsageError (one line, exit 2) for a name that is not a driver, or a driver whose
    module or library is not installed."""

    def __getitem__(self, name: str) -> type[DriverSession]:
        if name not in _CLASSES:
            raise UsageError(f"unknown driver {name!r}: {did_you_mean(name, NAMES)}choose one of {', '.join(NAMES)}")
        module, cls = _CLASSES[name]
        try:
            return getattr(import_module(module), cls)  # type: ignore[no-any-return]
        except ImportError as exc:
            raise UsageError(f"driver {name} is not available here: {exc}") from None

    def __contains__(self, name: object) -> bool:
        return name in _CLASSES

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


DRIVERS = _Drivers()


def driver(name: str) -> type[DriverSession]:
    """The session class of driver `name`; UsageError (one line) naming the choices if there is none."""
    return DRIVERS[name]
