"""Fresh schemas for runs: each run gets a schema built from nothing by the setup SQL.

Building one costs a few milliseconds (DDL is most of a cell's cost), so while a run
goes on, the next run's schema can be built on a second connection in the other of
two slots; the scratch database itself (about 175 ms to create) is made once.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

from txnlab.errors import ScenarioError
from txnlab.scenario.model import Scenario
from txnlab.server.connect import connect, first_line

SLOTS = ("txnlab_run_a", "txnlab_run_b")


def build_schema(conn: psycopg2.extensions.connection, scenario: Scenario, schema: str) -> None:
    """Drop and create `schema`, then run the setup SQL in it (one round trip per setup block)."""
    fresh = f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema};"
    batches = [fresh + (scenario.setup[0] if scenario.setup else ""), *scenario.setup[1:]]
    with conn.cursor() as cur:
        for batch in batches:
            try:
                cur.execute(batch)
            except psycopg2.Error as exc:
                raise ScenarioError(str(scenario.source), f"setup SQL failed: {first_line(exc)}") from None


@dataclass
class _Build:
    scenario: Scenario
    schema: str
    done: Future[None]


class SchemaSlots:
    """Two schema slots: one for the run in progress, one being built for the next run."""

    def __init__(self, dsn: str) -> None:
        self._conn = connect(dsn, autocommit=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="txnlab-schema")
        self._pending: _Build | None = None
        self._current = SLOTS[1]

    def claim(self, scenario: Scenario) -> str:
        """A schema freshly set up for `scenario`: the one built ahead if it matches, else built now."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.done.result()
            except ScenarioError:
                if pending.scenario is scenario:
                    raise
            else:
                if pending.scenario is scenario:
                    self._current = pending.schema
                    return pending.schema
        schema = self._spare()
        build_schema(self._conn, scenario, schema)
        self._current = schema
        return schema

    def prepare(self, scenario: Scenario) -> None:
        """Start building `scenario`'s schema in the slot the current run does not use."""
        schema = self._spare()
        self._pending = _Build(scenario, schema, self._executor.submit(build_schema, self._conn, scenario, schema))

    def close(self) -> None:
        if self._pending is not None:
            self._pending.done.exception()  # wait; its error no longer matters
        self._executor.shutdown(wait=True)
        self._conn.close()

    def _spare(self) -> str:
        return SLOTS[1] if self._current == SLOTS[0] else SLOTS[0]
