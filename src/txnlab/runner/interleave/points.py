"""Where an interleaved function pauses: `before` or `after` a statement it sends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from txnlab.errors import UsageError


class InterleaveError(UsageError):
    """A test asked the interleaving for something it cannot do (resume a function that is
    not paused, wait for one that is), a call missed its point, or the run ended early: one
    line, raised by the move that found it."""


@dataclass(frozen=True)
class Point:
    """Where a function pauses: just `when` ("before" or "after") the `nth` next statement
    it sends whose text starts with the words of `pattern` (case and runs of white space
    ignored; "UPDATE accounts" does not match "UPDATE accounts_log"), or in which a compiled
    regular expression `pattern` is found. `commit()` sends COMMIT,
    `rollback()` ROLLBACK."""

    when: Literal["before", "after"]
    pattern: str | re.Pattern[str]
    nth: int = 1

    def __post_init__(self) -> None:
        if self.nth < 1:
            raise InterleaveError(f"{self.when}(): nth counts statements from 1, not {self.nth}")
        if isinstance(self.pattern, str) and not self.pattern.strip():
            raise InterleaveError(f"{self.when}(): the statement to pause at is empty")

    def matches(self, statement: str) -> bool:
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.search(statement) is not None
        text, prefix = _words(statement), _words(self.pattern)
        following = text[len(prefix):len(prefix) + 1]
        # whole words: "UPDATE accounts" is not a prefix of "UPDATE accounts_log"
        return text.startswith(prefix) and not (_word_character(prefix[-1:]) and _word_character(following))

    def __str__(self) -> str:
        nth = f", nth={self.nth}" if self.nth > 1 else ""
        if isinstance(self.pattern, re.Pattern):
            text = self.pattern.pattern
            shown = f"re.compile(r'{text}')" if "'" not in text and not text.endswith("\\") else f"re.compile({text!r})"
            return f"{self.when}({shown}{nth})"
        return f"{self.when}({self.pattern!r}{nth})"


def before(pattern: str | re.Pattern[str], nth: int = 1) -> Point:
    """Pause just before the `nth` next statement that starts with `pattern` (see Point)."""
    return Point("before", pattern, nth)


def after(pattern: str | re.Pattern[str], nth: int = 1) -> Point:
    """Pause just after the `nth` next statement that starts with `pattern` returns (see Point)."""
    return Point("after", pattern, nth)


def _words(text: str) -> str:
    return " ".join(text.split()).casefold()


def _word_character(character: str) -> bool:
    return character.isalnum() or character == "_"
