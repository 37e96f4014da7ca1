"""A scenario's `workload:` section, checked and turned into a `Workload` (what `txnlab bench` runs).

The schema (schema.WorkloadDocument) checks shapes; here are the rules that relate the
section to the rest of the file: exactly one of `script` and `function`, `function` only
in a Python scenario and naming a callable of its module that accepts (conn, rng), and
invariants that default to the scenario's own. The script's own syntax (pgbench's
meta-commands, variables, one transaction) is checked with the bench engine's parser
(txnlab.bench.script), so a bad script fails when the file loads, not minutes into a bench.
"""

from __future__ import annotations

import ast
import inspect
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from txnlab.bench.script import ScriptError, parse_script
from txnlab.scenario.model import Scenario, Workload
from txnlab.scenario.quote import quote
from txnlab.scenario.schema import WorkloadDocument
from txnlab.scenario.source_lines import Where

TransactionFunction = Callable[[Any, random.Random], None]


def build_workload(
    where: Where, doc: WorkloadDocument | None, invariants: Mapping[str, str], module: Mapping[str, Any] | None,
    script_line: int | None = None,
) -> Workload | None:
    """The validated workload, or None when the scenario has none. `invariants`: the
    scenario's own (the default); `module`: a Python scenario's module namespace (None for
    YAML), where `function:` must name a callable; `script_line`: the file's line of the
    script's first line (None in a Python document). Raises ScenarioError with file:line."""
    if doc is None:
        return None
    if (doc.script is None) == (doc.function is None):
        said = "both" if doc.script is not None else "neither"
        raise where.fail(f"'workload:' needs exactly one of 'script:' (SQL) and 'function:' (Python); it has {said}",
                         where.line("workload"))
    if doc.function is not None:
        _check_function(where, doc.function, module)
    if doc.script is not None:
        _check_script(where, doc.script, script_line)
    return Workload(
        script=doc.script,
        function=doc.function,
        setup=tuple(doc.setup or ()),
        measures=dict(doc.measures or {}),
        invariants=dict(invariants if doc.invariants is None else doc.invariants),
        summary=doc.summary,
    )


def _check_script(where: Where, script: str, first_line: int | None) -> None:
    """The script is one that pgbench and txnlab's clients both run: its problem at its file line."""
    try:
        parse_script(script)
    except ScriptError as exc:
        line = None if first_line is None else first_line + exc.line - 1
        raise where.fail(f"workload script: {exc.problem}", line) from None


def _check_function(where: Where, name: str, module: Mapping[str, Any] | None) -> None:
    """`function:` names a module-level callable of a Python scenario that takes (conn, rng)."""
    line = where.line("workload", "function") or _python_line(where.source, name)
    if module is None:
        raise where.fail("'workload: function:' is for Python scenarios; a YAML workload gives its transaction as "
                         "'script:'", line)
    function = module.get(name)
    if function is None:
        raise where.fail(f"'workload: function:' names {quote(name)}, which the module does not define", line)
    if not callable(function):
        raise where.fail(f"'workload: function:' names {quote(name)}, which is not a function", line)
    try:
        inspect.signature(function).bind(None, None)
    except TypeError:
        raise where.fail(f"'workload: function:' {quote(name)} must accept two arguments: (conn, rng)", line) from None
    except ValueError:  # a builtin without a signature: nothing to check
        pass


def _python_line(source: Path, name: str) -> int | None:
    """The line of `"function": "name"` in a Python scenario's source (its SCENARIO dict
    keeps no lines), so that an error about it can point there; None when not found."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (isinstance(key, ast.Constant) and key.value == "function"
                        and isinstance(value, ast.Constant) and value.value == name):
                    return value.lineno
    return None


def transaction_function(scenario: Scenario) -> TransactionFunction:
    """The Python function a `function:` workload names, from the scenario's module (the
    loader checked that it exists and takes (conn, rng)). Raises ValueError for a
    scenario whose workload is not a Python function."""
    workload = scenario.workload
    if workload is None or workload.function is None or scenario.play is None:
        raise ValueError(f"{scenario.name} has no Python workload function")
    function: TransactionFunction = scenario.play.__globals__[workload.function]
    return function
