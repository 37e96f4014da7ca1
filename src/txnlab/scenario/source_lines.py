"""Lines of a scenario's source: where a rule's problem is reported, and where each
piece of SQL starts (`Scenario.lines`, so a failing statement can point at its line)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from txnlab.errors import ScenarioError, UsageError
from txnlab.levels import Level
from txnlab.scenario.quote import quote
from txnlab.scenario.schema_errors import line_at


class Where:
    """One source file and its raw document, so an error can say where it is."""

    def __init__(self, source: Path, document: Mapping[str, Any]) -> None:
        self.source = source
        self.document = document

    def line(self, *path: int | str) -> int | None:
        """The line of `document[path[0]][path[1]]...` (None in a Python document)."""
        return line_at(self.document, path)

    def fail(self, problem: str, line: int | None = None) -> ScenarioError:
        return ScenarioError(str(self.source), problem, line)

    def level(self, text: str, *path: int | str) -> Level:
        """The isolation level `text` names (at `path`); Level.parse's message otherwise."""
        try:
            return Level.parse(text)
        except UsageError as exc:
            raise self.fail(str(exc).replace(repr(text), quote(text), 1), self.line(*path)) from None


def _text_lines(container: Any, key: Any, prefix: str) -> dict[str, int]:
    """Lines where the SQL under `container[key]` starts: one text ("prefix.0") or a list
    ("prefix.N"); nothing for documents without lines (Python)."""
    value = container.get(key) if isinstance(container, Mapping) else None
    starts = getattr(container, "text_lines", {})
    if isinstance(value, str) and key in starts:
        return {f"{prefix}.0": starts[key]}
    item_starts: list[int] = getattr(value, "text_lines", [])
    if isinstance(value, list) and item_starts:
        return {f"{prefix}.{i}": line for i, line in enumerate(item_starts)}
    return {}


def source_lines(
    document: Mapping[str, Any], step_names: list[str], play: Callable[..., None] | None
) -> dict[str, int]:
    """Where each piece of SQL starts in the file (see `Scenario.lines`); called once the
    document has been validated, so its shapes are known to be right. `step_names` are
    the names of the document's steps, in order (unnamed ones included)."""
    lines = {
        **_text_lines(document, "setup", "setup"),
        **_text_lines(document, "teardown", "teardown"),
        **_text_lines(document, "final", "final"),
    }
    for name, options in (document.get("sessions") or {}).items():
        lines.update(_text_lines(options, "setup", f"session.{name}.setup"))
        lines.update(_text_lines(options, "teardown", f"session.{name}.teardown"))
    for name, item in zip(step_names, document.get("steps") or (), strict=False):
        lines.update({f"step.{name}": line for line in _text_lines(item, "sql", "sql").values()})
    invariants = document.get("invariants") or {}
    for name in invariants:
        lines.update({f"invariant.{name}": line for line in _text_lines(invariants, name, "sql").values()})
    lines.update(_workload_lines(document.get("workload"), lines))
    if play is not None and hasattr(play, "__code__"):
        lines["play"] = play.__code__.co_firstlineno
    return lines


def _workload_lines(workload: Any, lines: Mapping[str, int]) -> dict[str, int]:
    """Where the workload's SQL starts: "workload.script", "workload.setup.N",
    "workload.measure.NAME", "workload.invariant.NAME" (the scenario's own invariants'
    lines, in `lines`, when the workload names none of its own)."""
    if not isinstance(workload, Mapping):
        return {}
    # The script is kept stripped (as all SQL is), so its first line is after any blank lines it starts with.
    script = workload.get("script")
    skipped = script[: len(script) - len(script.lstrip())].count("\n") if isinstance(script, str) else 0
    found = {"workload.script": line + skipped for line in _text_lines(workload, "script", "script").values()}
    found.update(_text_lines(workload, "setup", "workload.setup"))
    measures = workload.get("measures") or {}
    for name in measures:
        found.update({f"workload.measure.{name}": line for line in _text_lines(measures, name, "").values()})
    invariants = workload.get("invariants")
    if invariants is not None:
        for name in invariants:
            found.update({f"workload.invariant.{name}": line for line in _text_lines(invariants, name, "").values()})
    else:
        found.update({f"workload.{key}": line for key, line in lines.items() if key.startswith("invariant.")})
    return found
