"""Fresh schemas for runs: each run gets a new schema built from nothing by the setup SQL.

Building one costs a few milliseconds (DDL is most of a cell's cost), so while a run
goes on, the next run's schema can be built on a second connection. Old schemas are
not dropped one by one: dropping the scratch database at the end removes them all at
once, for a fraction of what a DROP SCHEMA per run would cost.
"""

from __future__ import annotations

import secrets
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

from txnlab.errors import TxnlabError
from txnlab.history.capture import HistoryLog, Installed
from txnlab.scenario.model import Scenario
from txnlab.runner.execute import guarded, scenario_sql_failure
from txnlab.server.connect import connect

PREFIX = "txnlab_run_"
LABEL = "the schema builder's connection"
CLOSE_WAIT_SECONDS = 1.0


def build_schema(
    conn: psycopg2.extensions.connection, scenario: Scenario, schema: str, history: HistoryLog | None = None,
) -> Installed | None:
    """Create `schema`, then run the setup SQL in it (one round trip per setup block), then,
    with a `history` log, put its triggers on the schema's tables (one more round trip; see
    history/capture.py) and return what it found. Its name never reaches the user: see runner.names.

    Raises what `scenario_sql_failure` makes of a failing block, pointing at its line."""
    fresh = f"CREATE SCHEMA {schema}; SET search_path = {schema};"
    batches = [(fresh, scenario.setup[0] if scenario.setup else ""), *(("", sql) for sql in scenario.setup[1:])]
    with conn.cursor() as cur:
        for index, (prefix, sql) in enumerate(batches):
            try:
                cur.execute(prefix + sql)
            except psycopg2.Error as exc:
                raise scenario_sql_failure(
                    scenario, f"setup.{index}", "setup SQL", exc, sql, skipped=len(prefix), connection=conn, label=LABEL,
                    schema=schema,
                ) from None
    if history is None:
        return None
    with guarded(conn, LABEL):
        return history.install(conn, schema)


@dataclass
class _Build:
    scenario: Scenario
    schema: str
    done: Future[Installed | None]


class SchemaSupply:
    """Hands out a fresh schema per run, building the next one ahead when told what comes next."""

    def __init__(self, dsn: str, *, history: bool = False) -> None:
        self.conn = connect(dsn, autocommit=True, application_name="txnlab schema builder")
        self.pid = self.conn.get_backend_pid()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="txnlab-schema")
        self._pending: _Build | None = None
        token = secrets.token_hex(3)  # two labs may share a database
        self._prefix = f"{PREFIX}{token}_"
        self._count = 0
        # The lab's history log (history/capture.py), whose triggers each schema gets after its setup.
        self.history = HistoryLog(self.conn, token) if history else None

    def claim(self, scenario: Scenario) -> tuple[str, Installed | None]:
        """A schema freshly set up for `scenario` (the one built ahead if it matches, else built
        now), and what the history log's triggers found in it (None without a history log)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                installed = pending.done.result()
            except TxnlabError:
                if pending.scenario is scenario:
                    raise
            else:
                if pending.scenario is scenario:
                    return pending.schema, installed
        schema = self._new_name()
        return schema, build_schema(self.conn, scenario, schema, self.history)

    def prepare(self, scenario: Scenario) -> None:
        """Start building a schema for `scenario`, the next run, on the builder's thread."""
        schema = self._new_name()
        self._pending = _Build(scenario, schema, self._executor.submit(
            build_schema, self.conn, scenario, schema, self.history))

    def close(self) -> None:
        """Close the builder's connection, once no build uses it. A build still blocked after
        a second is left to the scratch database's forced drop, which ends it."""
        if self._pending is not None:
            try:
                self._pending.done.exception(timeout=CLOSE_WAIT_SECONDS)  # its error no longer matters
            except FutureTimeout:
                self._executor.shutdown(wait=False)
                return
        self._executor.shutdown(wait=True)
        self.conn.close()

    def _new_name(self) -> str:
        self._count += 1
        return f"{self._prefix}{self._count}"
