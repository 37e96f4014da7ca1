"""Turn pydantic's errors on a scenario document into one calm line naming the file and line.

pydantic reports where a value is wrong as a `loc` path (("steps", 3, "sql")); YAML
documents carry the line of every key and item (yaml_source's LineDict and LineList),
so the path leads back to the line. Python documents have no lines: the message then
names the path alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from txnlab.errors import ScenarioError
from txnlab.scenario import schema
from txnlab.scenario.quote import kind, quote

Loc = tuple[int | str, ...]

# What a key of a dict field is called in a message ("session name 'x y' must be an identifier").
KEY_NAMES = {
    "sessions": "session name", "invariants": "invariant name", "errors": "step name", "rows": "step name",
    "blocked_by": "step name", "rowcount": "step name", "notices": "step name",
}
PATTERN_PROBLEMS = {
    schema.NAME.pattern: "must be lowercase letters, digits and dashes",
    schema.IDENTIFIER.pattern: "must be an identifier",
    schema.SQLSTATE_OR_CLASS.pattern: (
        "is not a SQLSTATE (five characters, e.g. 40001) or an exception class (e.g. psycopg2.ProgrammingError)"
    ),
    schema.OUTCOME.pattern: "is not a SQLSTATE, an exception class, or 'none'",
}
MISSING_PROBLEMS: dict[Loc, str] = {
    ("claim", "holds"): "a claim needs 'holds: true' or 'holds: false' (what PostgreSQL really does)",
    ("claim", "true_if"): "a claim needs 'true_if:', the conditions under which it would be true",
    ("anomaly", "observed_if"): "anomaly needs 'observed_if:', a list of conditions",
}


def line_at(document: Any, path: Sequence[int | str]) -> int | None:
    """The line of the deepest part of `path` found in a YAML document (None for Python)."""
    line = getattr(document, "line", None)
    node = document
    for part in path:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            line = getattr(node, "item_lines", [line] * (part + 1))[part]
            node = node[part]
        elif isinstance(part, str) and isinstance(node, Mapping) and part in node:
            line = getattr(node, "key_lines", {}).get(part, line)
            node = node[part]
        else:
            break
    return line


def scenario_error(exc: ValidationError, document: Any, source: Path) -> ScenarioError:
    """The first problem pydantic found, in the file's order: an unknown key first (a
    typo in a key explains the missing value that follows), then by line."""
    errors = exc.errors(include_url=False)
    lines = [line_at(document, _path(error["loc"])) for error in errors]
    order = sorted(
        range(len(errors)),
        key=lambda i: (errors[i]["type"] not in ("extra_forbidden", "invalid_key"), lines[i] or 0, i),
    )
    first = order[0]
    return ScenarioError(str(source), _problem(errors[first]), lines[first])


def _path(loc: Loc) -> Loc:
    """`loc` without pydantic's "[key]" marker (an error in a dict's key) and the schema's
    bracketed union tags (which form of an expected error was read)."""
    return tuple(part for part in loc if not (isinstance(part, str) and part.startswith("[") and part.endswith("]")))


def _problem(error: ErrorDetails) -> str:
    loc, kind_of_error, value = error["loc"], error["type"], error["input"]
    path = _path(loc)
    name = _dotted(path)
    if kind_of_error == "extra_forbidden":
        return _unknown_key(path)
    if kind_of_error == "invalid_key" or (loc and loc[-1] == "[key]" and kind_of_error == "string_type"):
        return f"a key in {_what(path[:-1])} must be text, not {kind(value)}"
    if kind_of_error == "missing":
        if path[-2:] in MISSING_PROBLEMS:
            return MISSING_PROBLEMS[path[-2:]]
        model = _model_at(path[:-1])
        if model is not None and model.model_fields[str(path[-1])].annotation is str:
            return f"{name} must be non-empty text"
        return f"{_what(path[:-1])} needs '{path[-1]}:'"
    if kind_of_error == "string_pattern_mismatch":
        problem = PATTERN_PROBLEMS.get(str(error.get("ctx", {}).get("pattern")), "is not allowed here")
        if loc[-1] == "[key]":
            name = KEY_NAMES.get(str(path[-2]), f"a key of {_dotted(path[:-1])}")
        elif problem.startswith("is not"):
            name = "errors" if "errors" in path[-3:-1] else str(path[-1])  # {step: 4001} or {step: {sqlstate: 4001}}
            name += ":"
        return f"{name} {quote(value)} {problem}"
    if kind_of_error in ("string_type", "string_too_short"):
        return f"{name} must be non-empty text" + (f", not {kind(value)}" if not isinstance(value, str) else "")
    if kind_of_error in ("int_type", "greater_than_equal"):  # a row count
        return f"{name} must be a whole number, 0 or more, not {quote(value)}"
    if kind_of_error == "bool_type":
        return f"{name} must be true or false, not {quote(value)}"
    if kind_of_error == "list_type":
        return f"{name} must be a list, not {kind(value)}"
    if kind_of_error in ("dict_type", "model_type"):
        return f"{name} must be a mapping, not {kind(value)}"
    return f"{name}: {error['msg']}"


def _dotted(path: Loc) -> str:
    """A path in a document as a reader finds it: `steps[3].sql`, `expect.'ru, rc'.rows`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            shown = part if schema.IDENTIFIER.match(part) else quote(part)
            text += f".{shown}" if text else shown
    return text or "the scenario"


def _what(path: Loc) -> str:
    """The part of the document at `path`, named for a message ("a step", "session 'b'")."""
    if not path:
        return "the scenario"
    if len(path) == 2 and path[0] == "sessions":
        return f"session {quote(path[1])}"
    if len(path) == 2 and path[0] == "steps":
        return "a step"
    if len(path) == 2 and path[0] == "expect":
        return f"expect {quote(path[1])}"
    if len(path) >= 2 and path[-2] in ("true_if", "observed_if"):
        return "a condition"
    if path in (("claim",), ("anomaly",)):
        return str(path[0])
    return _dotted(path)


def _unknown_key(path: Loc) -> str:
    model = _model_at(path[:-1])
    allowed = sorted(model.model_fields) if model else []
    key = str(path[-1])
    hint = difflib.get_close_matches(key, allowed, n=1) if len(key) < 40 else []
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    return f"unknown key {quote(key)} in {_what(path[:-1])}{suggestion}; allowed: {', '.join(allowed)}"


def _model_at(path: Loc) -> type[BaseModel] | None:
    """The model that validates the mapping at `path` (the scenario, a step, a session...)."""
    models: dict[tuple[str, ...], type[BaseModel]] = {
        (): schema.ScenarioDocument,
        ("sessions", "*"): schema.SessionDocument,
        ("steps", "*"): schema.StepDocument,
        ("expect", "*"): schema.ExpectationDocument,
        ("expect", "*", "alternatives", "*"): schema.AlternativeDocument,
        ("expect", "*", "errors", "*"): schema.ErrorDocument,
        ("expect", "*", "alternatives", "*", "errors", "*"): schema.ErrorDocument,
        ("claim",): schema.ClaimDocument,
        ("anomaly",): schema.AnomalyDocument,
        ("claim", "true_if", "*"): schema.ConditionDocument,
        ("anomaly", "observed_if", "*"): schema.ConditionDocument,
    }
    pattern = tuple("*" if isinstance(p, int) or (i and path[i - 1] in ("sessions", "expect", "errors")) else p
                    for i, p in enumerate(path))
    return models.get(pattern)
