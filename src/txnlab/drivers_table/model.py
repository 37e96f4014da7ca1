"""The drivers table as data: what each driver sent and what happened, per behaviour.

Built by txnlab.drivers_table.bench from live probes; read by the renderers. Nothing here
is written by hand but the behaviours' titles and the drivers' names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

@dataclass(frozen=True)
class Behaviour:
    """One row: `key` is stable (JSON, tests); `title` is what the row shows.

    `shows_end`: the end of the probe's unit of work is the lesson (a `with` block's exit,
    commit() after savepoints, a pool's reset on return), so its cells' `sent` runs to the
    end and nothing is left for `teardown`. Otherwise a cell's `sent` stops after the last
    statement the behaviour needs, and the probe's clean-up (a ROLLBACK on close) is
    `teardown`, never part of the lesson.
    """

    key: str
    title: str
    shows_end: bool = False


@dataclass(frozen=True)
class Driver:
    """One column: `key` as JSON and tests name it; `package` the installed distribution whose
    version the header shows (importlib.metadata); `dialect` the SQLAlchemy dialect, if any,
    and `dbapi` the driver that dialect runs on (its own Driver, with its own version: the
    header names both, "SQLAlchemy 2.1.9 + psycopg2 2.9.13")."""

    key: str
    label: str
    package: str
    version: str
    dialect: str | None = None
    dbapi: Driver | None = None


@dataclass(frozen=True)
class Cell:
    """What one driver did for one behaviour.

    `sent`: each Query or Parse message the driver's connections put on the wire for the
    behaviour probed (the wire tap's record, exact text), in order, up to the moment the
    probe took it. `happened`: the server's facts and the driver's view afterwards, in words
    (e.g. "server: idle in transaction; driver: INTRANS"). `teardown`: what the probe's own
    clean-up sent after that (closing its connection, engine or pool), kept apart because
    it is not the lesson; where the clean-up IS the behaviour (a pool's reset on return, a
    `with` block's end) the probe takes `sent` after it and `teardown` is empty.
    `applies` is False where the driver has no such behaviour (the cell shows "—");
    `error` is set when the probe itself raised something unexpected.
    """

    sent: tuple[str, ...] = ()
    happened: str = ""
    applies: bool = True
    error: str | None = None
    teardown: tuple[str, ...] = ()


NOT_APPLICABLE = Cell(applies=False)


@dataclass(frozen=True)
class DriversTable:
    """The whole table: server version, columns, rows, and a cell per (behaviour key, driver key)."""

    server_version: str
    drivers: tuple[Driver, ...]
    behaviours: tuple[Behaviour, ...]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def cell(self, behaviour: str, driver: str) -> Cell:
        """The cell of `behaviour` for `driver` (NOT_APPLICABLE when none was probed)."""
        return self.cells.get((behaviour, driver), NOT_APPLICABLE)
