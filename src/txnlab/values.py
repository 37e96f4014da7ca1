"""Values exactly as the server has them: what a step returned, and how it is shown,
compared, written to JSON and sent back in `${step.column}`.

A SQL step's cell is the server's own text form of the value, what psql prints
(numeric digits exactly, dates in the session's DateStyle, intervals in its
IntervalStyle, bytea as `\\x...`, arrays as `{...}`, json as it was stored), or None for
NULL; its column type is the server's name for the type (`format_type`, e.g. `numeric`,
`timestamp with time zone`, `integer[]`). A Python step's cell is its return value as
data (see `python_value`), with the column type PYTHON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from txnlab.control_pictures import pictured

NULL = "NULL"  # how NULL is shown: psql's `\pset null NULL`
PYTHON = "Python"  # a Python step's result; format_type never prints a name with capitals unquoted
UNKNOWN_TYPE = "???"  # format_type's answer for a type it cannot see (created in an uncommitted transaction)

# Types whose text form can never be mistaken for text or for NULL: shown bare, as psql shows
# them. Values of every other type (text, json, enums, composites, geometry...) are shown as
# quoted SQL literals, so that the text 'NULL' and NULL never look alike.
BARE_TYPES = frozenset({
    "smallint", "integer", "bigint", "numeric", "real", "double precision", "money", "oid",
    "boolean", "date", "time without time zone", "time with time zone", "timestamp without time zone",
    "timestamp with time zone", "interval", "bytea", "uuid", "pg_lsn",
})
# Types carried as JSON numbers and booleans; every other value is a JSON string of the server's
# text, so that no exact number passes through a float.
JSON_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint", "oid"})
JSON_BOOLEAN_TYPE = "boolean"


def python_value(value: Any) -> Any:
    """A Python step's return value as data that shows and converts to JSON without losing a
    digit: None, booleans, integers, floats (already binary in Python), strings and Decimals
    stay (a Decimal is shown as `Decimal('150.00')`, written to JSON as "150.00"); lists,
    tuples and dicts are converted inside; bytes become `\\x` and hex digits, as PostgreSQL
    writes bytea; anything else its `str()` (a date or time its ISO form, a UUID its text)."""
    if value is None or isinstance(value, (bool, int, float, str, Decimal)):
        return value
    if isinstance(value, (list, tuple)):
        return [python_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): python_value(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    return str(value)


def quoted(text: str) -> str:
    """`text` as a standard SQL string literal: in single quotes, a quote doubled."""
    return "'" + text.replace("'", "''") + "'"


def as_text(value: Any) -> str | None:
    """An expected value (from a scenario file) as the text the server would print for it:
    None stays NULL, text stays as written, true/false become t/f, a number its digits as
    written (YAML `0.10` is read as the exact decimal 0.10), a date its ISO form, a list
    or mapping in JSON's notation (see `_as_written`)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (list, dict)):
        return _as_written(value)
    return str(value)


def _as_written(value: Any) -> str:
    """A list or mapping from a scenario file in JSON's notation (a number with its digits
    as written): it matches only a json value the server prints in exactly that form (an
    array prints as `{1,NULL}`), and a finding shows it as the file wrote it, not as
    Python's `[1, None]` or `Decimal('1.10')`."""
    if isinstance(value, list):
        return "[" + ", ".join(_as_written(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_as_written(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, str)):
        return json.dumps(value)
    return str(value)


def shown(value: Any, column_type: str | None = None) -> str:
    """One value as every renderer shows it, its control characters as pictures (a tab as ␉,
    ESC as ␛: see txnlab.control_pictures). A Python step's value in Python's notation;
    NULL as `NULL`; a value of a BARE_TYPES type or an array as the server's text; any other value as a
    quoted literal (`'alice'`, `'{"a": 1}'`). Without a column type (an expectation with no
    column to compare with), text is quoted and numbers, dates and booleans are not."""
    if column_type == PYTHON:
        return repr(value)
    text = as_text(value)
    if text is None:
        return NULL
    text = pictured(text)  # data: a tab or an ESC in a value is shown, never obeyed or dropped
    return text if _bare(value, column_type) and text != NULL else quoted(text)


def _bare(value: Any, column_type: str | None) -> bool:
    """Whether a value is shown without quotes: by its column's type, or, without one, unless it is text."""
    if column_type is None:
        return not isinstance(value, str)
    return column_type in BARE_TYPES or column_type.endswith("[]")


def expected_cell(value: Any, column_type: str | None) -> Any:
    """An expected value in the language of the column it is compared with: a Python step's
    result as `python_value` makes it, else the server's text (see `as_text`)."""
    return python_value(value) if column_type == PYTHON else as_text(value)


def _type_at(column_types: Sequence[str] | None, index: int) -> str | None:
    return column_types[index] if column_types is not None and index < len(column_types) else None


def row_cells(row: Sequence[Any], column_types: Sequence[str] | None) -> list[str]:
    """Each value of a row as `shown`, by its column's type."""
    return [shown(value, _type_at(column_types, i)) for i, value in enumerate(row)]


def rows_text(rows: Sequence[Sequence[Any]], column_types: Sequence[str] | None) -> str:
    """Rows in one line, `[[12345678901234567.89], [0.10]]`: how findings show what was
    expected and what was observed, both in the observed columns' types."""
    return "[" + ", ".join("[" + ", ".join(row_cells(row, column_types)) + "]" for row in rows) + "]"


def expected_rows_text(rows: Sequence[Sequence[Any]], column_types: Sequence[str] | None) -> str:
    """Expected rows as `rows_text` shows observed ones, each value read as its column's type."""
    converted = [[expected_cell(v, _type_at(column_types, i)) for i, v in enumerate(row)] for row in rows]
    return rows_text(converted, column_types)


def _json_data(value: Any) -> Any:
    """A Python step's value (see `python_value`) as JSON data: a Decimal as the string of its digits."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_json_data(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_data(v) for k, v in value.items()}
    return value


def json_cell(value: Any, column_type: str) -> Any:
    """A value in JSON output (schema_version 2): integers and booleans as JSON numbers and
    true/false, NULL as null, every other server value as the string of its text (numeric
    keeps its exact digits), a Python step's value as JSON data (a Decimal as its digits)."""
    if column_type == PYTHON:
        return _json_data(value)
    if value is None:
        return value
    if column_type in JSON_INTEGER_TYPES:
        return int(value)
    if column_type == JSON_BOOLEAN_TYPE:
        return value == "t"
    return value


# Type names that, written without a length, mean a length of 1 (PostgreSQL's docs,
# "Character Types": `character` is `character(1)`; "Bit String Types": `bit` is `bit(1)`),
# so a cast to them would cut a char(3) or bit(3) value; their internal names take any length.
CAST_NAMES = {"character": "bpchar", "bit": '"bit"'}


def cast_name(column_type: str) -> str:
    """The name to cast a value of `column_type` (format_type without a modifier) to, so
    that the cast keeps the whole value: `character[]` becomes `bpchar[]`."""
    element = column_type.removesuffix("[]")
    return CAST_NAMES.get(element, element) + column_type[len(element):]


def sql_literal(value: Any, column_type: str, adapt: Callable[[Any], str]) -> str:
    """What `${step.column}` puts into SQL: the server's text as a literal cast to the
    column's type (`'12345678901234567.89'::numeric`, `NULL::integer`, `'ab '::bpchar`:
    see `cast_name`), so the statement gets back exactly the value that was read. `adapt` quotes a Python value as the driver
    does (psycopg2's mogrify); a Python step's value goes through it as it is."""
    if column_type == PYTHON:
        return adapt(value)
    literal = NULL if value is None else adapt(value)
    return literal if column_type == UNKNOWN_TYPE else f"{literal}::{cast_name(column_type)}"
