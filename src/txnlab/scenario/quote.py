"""Quote a value from a scenario file inside a one-line error message."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping
from typing import Any

QUOTE_LIMIT = 40  # characters of a value shown in a message; a 1 MB value is not echoed


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """`repr` of `value` (so control characters stay escaped, on one line), cut to about
    `limit` characters with an ellipsis."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + "…"
    if isinstance(value, int) and value.bit_length() > 64:
        return "a long number"  # repr() of a huge int is slow, and refused past 4300 digits
    text = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else kind(value)
    return text if len(text) <= limit else text[:limit] + "…"


def kind(value: Any) -> str:
    """Name a YAML value's type the way a scenario author thinks of it."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (int, float, decimal.Decimal)):
        return "a number"
    if value is None:
        return "null"
    if isinstance(value, datetime.date):  # YAML reads 2017-01-01 as a date
        return "a date"
    if isinstance(value, bytes):  # YAML's !!binary
        return "binary data"
    return type(value).__name__
