"""The four SQL isolation levels, with the short names the CLI and scenario files accept."""

from __future__ import annotations

from enum import Enum

from txnlab.errors import UsageError


class Level(Enum):
    """An isolation level; `value` is PostgreSQL's spelling (as `SHOW transaction_isolation` prints)."""

    READ_UNCOMMITTED = "read uncommitted"
    READ_COMMITTED = "read committed"
    REPEATABLE_READ = "repeatable read"
    SERIALIZABLE = "serializable"

    @property
    def short(self) -> str:
        return _SHORT[self]

    @property
    def sql(self) -> str:
        """The level as it appears in SQL, e.g. `REPEATABLE READ`."""
        return self.value.upper()

    @classmethod
    def parse(cls, text: str) -> "Level":
        """Accept `rc`, `read committed`, `READ_COMMITTED`, `read-committed`..."""
        key = " ".join(text.strip().lower().replace("_", " ").replace("-", " ").split())
        for level in cls:
            if key in (level.value, level.short):
                return level
        choices = ", ".join(f"{lvl.short} ({lvl.value})" for lvl in cls)
        raise UsageError(f"unknown isolation level {text!r}; choose one of {choices}")


_SHORT = {
    Level.READ_UNCOMMITTED: "ru",
    Level.READ_COMMITTED: "rc",
    Level.REPEATABLE_READ: "rr",
    Level.SERIALIZABLE: "ser",
}

ALL_LEVELS: tuple[Level, ...] = tuple(Level)
