"""The scenario format, declared once: pydantic models of a scenario document.

YAML files and Python `SCENARIO` dicts are both validated against `ScenarioDocument`;
`docs/scenario.schema.json` is generated from it (`json_schema()`; a test fails when
the file is stale) so editors can check files as they are typed. The models check
shapes and types; the rules that relate parts of a document (a step's session exists,
expectations name known steps...) are checked afterwards, in code (validate.py,
expectations.py).

Strictness, decided once: no coercion between types, because YAML's would surprise
(`"true"` in quotes is text, not a flag; `1984` is a number, not a title). One
exception: a SQLSTATE written unquoted (`40001`) is a number to YAML and is read back
as its digits, so the catalogue's habit keeps working; `4001` or `00000` (which YAML
reads as 0) then fail as "not a SQLSTATE".
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    WithJsonSchema,
)

from txnlab.runner.drivers import NAMES as DRIVER_NAMES

NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][\w-]*$")
# A SQLSTATE, or a failure without one (a driver or Python exception) named by its class.
SQLSTATE_OR_CLASS = re.compile(r"^([0-9A-Z]{5}|[A-Za-z_]\w*(\.[A-Za-z_]\w*)+)$")
OUTCOME = re.compile(SQLSTATE_OR_CLASS.pattern.replace("^(", "^(none|", 1))  # "none": succeeded

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, pattern=NAME.pattern)]
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER.pattern)]
LevelName = Annotated[
    Text, Field(description="An isolation level: ru, rc, rr, ser, or a full name like 'repeatable read'.")
]

DriverName = Annotated[
    Text, Field(description="A Python driver: " + ", ".join(DRIVER_NAMES) + ".", json_schema_extra={"enum": list(DRIVER_NAMES)})
]


def _one_or_many(value: Any) -> Any:
    """SQL is one text or a list of texts; one text is a list of one."""
    return [value] if isinstance(value, str) else value


_TEXT_SCHEMA = {"type": "string", "minLength": 1}
SqlTexts = Annotated[
    list[Text],
    BeforeValidator(_one_or_many),
    WithJsonSchema({"anyOf": [_TEXT_SCHEMA, {"type": "array", "items": _TEXT_SCHEMA}]}),
]


def _digits_as_text(value: Any) -> Any:
    """YAML reads an unquoted 40001 as a number; a SQLSTATE is its digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**9:
        return str(value)
    return value


_SQLSTATE_SCHEMA = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
Sqlstate = Annotated[
    str,
    BeforeValidator(_digits_as_text),
    StringConstraints(pattern=SQLSTATE_OR_CLASS.pattern),
    WithJsonSchema({**_SQLSTATE_SCHEMA, "description": "A SQLSTATE (quote it: \"40001\") or an exception class."}),
]
Outcome = Annotated[
    str,
    BeforeValidator(_digits_as_text),
    StringConstraints(pattern=OUTCOME.pattern),
    WithJsonSchema({**_SQLSTATE_SCHEMA, "description": "A SQLSTATE, an exception class, or none (succeeded)."}),
]


# A value in a row is whatever a step returns: a number, text, null; a Python step may return a dict.
Rows = Annotated[list[list[Any]], Field(description="Positional rows, e.g. [[1, 10], [2, 20]].")]


class _Part(BaseModel):
    """Every part of a document: no unknown keys, no type coercion, read-only."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SessionDocument(_Part):
    """A connection taking part in the scenario (see SessionSpec)."""

    setup: SqlTexts | None = Field(default=None, description="Runs with autocommit before the steps.")
    teardown: SqlTexts | None = Field(
        default=None, description="Runs after the run, open transactions rolled back first."
    )
    autocommit: bool | None = Field(
        default=None, description="Statements run as written (write BEGIN yourself)."
    )
    level: LevelName | None = Field(
        default=None, description="Pin this session's level whatever the run's level."
    )
    read_only: bool | None = Field(default=None, description="psycopg2 set_session(readonly=...).")
    deferrable: bool | None = Field(default=None, description="psycopg2 set_session(deferrable=...).")
    driver: DriverName | None = Field(
        default=None, description="The Python driver the session speaks through (default psycopg2)."
    )


class StepDocument(_Part):
    """One SQL command sent by one session."""

    name: Identifier | None = Field(default=None, description="Default: <session>-<n>.")
    session: Text
    sql: Text = Field(description="SQL; ${step.column} reads a column an earlier step returned.")
    narration: str | None = Field(default=None, description="Shown in workshop mode and by `txnlab show`.")


class ConditionDocument(_Part):
    """A fact about a run: a step's rows, wait or error; an invariant; the anomaly."""

    step: Identifier | None = None
    rows: Rows | None = None
    blocked: bool | None = None
    error: Outcome | None = None
    invariant: Identifier | None = None
    holds: bool | None = None
    anomaly: bool | None = None


class AnomalyDocument(_Part):
    """How to tell from a run that the anomaly happened: all conditions hold."""

    name: Text
    observed_if: list[ConditionDocument]


class ClaimDocument(_Part):
    """Something said about PostgreSQL, checked by running the scenario."""

    says: Text
    source: Text | None = None
    level: LevelName = Field(description="The level the claim is about.")
    true_if: list[ConditionDocument] = Field(description="The claim is true when all of these hold.")
    holds: bool = Field(description="What PostgreSQL really does: is the claim true?")


class ErrorDocument(_Part):
    """An expected failure with more than its SQLSTATE: `{sqlstate: "40001", detail: pivot}`."""

    sqlstate: Sqlstate
    detail: Text | None = Field(
        default=None, description="Text the server's DETAIL must contain (case-sensitive), e.g. pivot."
    )


def _error_form(value: Any) -> str:
    """Which form of an expected error `value` is: a mapping, or the SQLSTATE alone (the tags
    are bracketed so that error messages leave them out of the path, like pydantic's "[key]")."""
    return "[mapping]" if isinstance(value, dict) else "[sqlstate]"


# `errors: {step: "40001"}`, or `{step: {sqlstate: "40001", detail: pivot}}`. The discriminator
# validates a value against its form only, so a mistake is reported once, for that form.
ExpectedError = Annotated[
    Annotated[Sqlstate, Tag("[sqlstate]")] | Annotated[ErrorDocument, Tag("[mapping]")],
    Discriminator(_error_form),
]


class ExpectationFields(_Part):
    """The keys shared by an `expect:` entry and each of its accepted alternatives."""

    blocked: list[Identifier] | None = Field(
        default=None, description="Exact: the steps that waited for a lock."
    )
    blocked_by: dict[Identifier, list[Identifier]] | None = Field(
        default=None,
        description="Exact, per blocked step: the sessions it waited for when its wait was first detected.",
    )
    errors: dict[Identifier, ExpectedError] | None = Field(
        default=None, description="Exact: failed steps and their SQLSTATE (or {sqlstate, detail})."
    )
    skipped: list[Identifier] | None = Field(
        default=None, description="Exact: steps never sent (a ${step.column} was not read)."
    )
    rows: dict[Identifier, Rows] | None = Field(default=None, description="What these steps returned.")
    holds: dict[Identifier, list[Text]] | None = Field(
        default=None,
        description="Exact: the locks the step's session holds right after the step, in the capture "
        "view's words, e.g. 'ExclusiveLock on advisory key 42'; [] for none.",
    )
    rowcount: dict[Identifier, Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="Rows these steps affected (or returned), as the server counted them."
    )
    notices: dict[Identifier, list[Text]] | None = Field(
        default=None,
        description="Exact, per step: one text per notice or warning it raised, in order; each is contained in it.",
    )
    sent: dict[Identifier, list[Text]] | None = Field(
        default=None,
        description="Exact, per step (needs capture: true): each message the driver sent for it, in order "
        "(runs of whitespace count as one space); [] for none.",
    )
    state: dict[Identifier, Text] | None = Field(
        default=None,
        description="Per step (needs capture: true): the server's state of the step's session right after "
        "it, as pg_stat_activity says it, e.g. 'idle in transaction'.",
    )
    invariants: dict[Identifier, bool] | None = None
    anomaly: bool | None = Field(default=None, description="The anomaly happens at this level.")
    note: Text | None = Field(
        default=None, description="One line on why PostgreSQL behaves so at this level."
    )


class AlternativeDocument(ExpectationFields):
    """Another outcome the server may choose (a race of its own): the keys it gives replace the
    expectation's, the others are inherited."""

    name: Identifier = Field(description="Named in the verdict when this alternative is what happened.")


class ExpectationDocument(ExpectationFields):
    """What PostgreSQL does at the levels of one `expect:` key."""

    alternatives: list[AlternativeDocument] | None = Field(
        default=None, description="Other accepted outcomes; a run matching any of them is as expected."
    )


class WorkloadDocument(_Part):
    """What `txnlab bench` runs as a load (see Workload): one transaction every client repeats."""

    summary: Text | None = Field(default=None, description="What the load does and what it shows.")
    setup: SqlTexts | None = Field(
        default=None,
        description="SQL run after the scenario's setup, before each measured run: the data size.",
    )
    script: Text | None = Field(
        default=None,
        description="The transaction as a pgbench custom script (\\set lines, SQL ending in ; or \\gset, "
        ":name variables), so that pgbench can run the same text. Exactly one of script and function.",
    )
    function: Identifier | None = Field(
        default=None,
        description="Python scenarios: the name of a module-level function(conn, rng) -> None that runs "
        "one transaction through psycopg2. Exactly one of script and function.",
    )
    measures: dict[Identifier, Text] | None = Field(
        default=None, description="Name -> SQL returning one number, counted on the data after the run."
    )
    invariants: dict[Identifier, Text] | None = Field(
        default=None,
        description="Name -> SQL returning one boolean, checked after the run. Default: the scenario's invariants.",
    )


class ScenarioDocument(_Part):
    """A scenario file (or a Python scenario's SCENARIO dict)."""

    model_config = ConfigDict(
        title="txnlab scenario",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    name: Name = Field(description="Lowercase letters, digits and dashes; unique in the catalogue.")
    title: Text
    summary: Text
    tags: list[Text] | None = None
    references: list[Text] | None = Field(default=None, description="Documentation that backs the claim.")
    levels: list[LevelName] | None = Field(default=None, description="Default: all four.")
    setup: SqlTexts | None = Field(default=None, description="Runs once per run, in a fresh schema.")
    teardown: SqlTexts | None = None
    sessions: dict[Identifier, SessionDocument | None] = Field(description="Two or more.")
    steps: list[StepDocument] | None = Field(
        default=None, description="Run in this order (the default permutation)."
    )
    permutations: list[list[Identifier]] | None = Field(
        default=None, description="Other orders of the same steps."
    )
    invariants: dict[Identifier, Text] | None = Field(
        default=None, description="SQL returning one boolean each."
    )
    final: SqlTexts | None = Field(
        default=None,
        description="SQL run on the final committed state after the last step, before teardown; "
        "its rows are shown after the run.",
    )
    anomaly: AnomalyDocument | None = None
    expect: dict[str, ExpectationDocument | None] | None = Field(
        default=None, description="Keys: ru rc rr ser, full names, comma lists, or all; every level needs one."
    )
    capture: bool | None = Field(
        default=None, description="Record what the driver sent and the server's view."
    )
    drivers: list[DriverName] | None = Field(
        default=None,
        description="Python scenarios: the drivers play() supports (run.driver tells which one runs); "
        "txnlab run --driver may choose among them. Default: the drivers its sessions pin, else psycopg2.",
    )
    claim: ClaimDocument | None = None
    workload: WorkloadDocument | None = Field(
        default=None, description="The load `txnlab bench` runs; without it the scenario cannot be benched."
    )


def json_schema() -> str:
    """The published JSON Schema (docs/scenario.schema.json), as text."""
    return json.dumps(ScenarioDocument.model_json_schema(), indent=2) + "\n"
