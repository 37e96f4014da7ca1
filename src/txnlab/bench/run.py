"""Runs a BenchPlan: one measured run per tool, level and client count, each from a fresh
copy of the workload's data in the scratch database.

A run: a fresh schema (the scenario's setup, then the workload's setup), every connection
closed; the server's counters read once no backend of the scratch database is left; the tool
run with the lock-wait sampler on; the counters read again once every client has gone; then
the workload's measures and invariants on the final data, from a new connection.

Counting, the same for both tools: `retries` are tries run again after a 40001 or 40P01;
`failed` are transactions given up after the last try; `serialization_failures` and
`deadlocks` count every 40001 and 40P01 error met (each one either retried or given up).
Deadlocks are the server's count (pg_stat_database.deadlocks) when it keeps one; pgbench's
serialization errors are then its retries and failures less the deadlocks, the only other
error it retries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.extensions

from txnlab.bench.clients import ClientResult, Load, Transaction, session_options
from txnlab.bench.model import BenchPlan, Latency, LoadResult
from txnlab.bench.pgbench import PgbenchResult, run_pgbench
from txnlab.bench.script import ScriptError, parse_script
from txnlab.bench.server_stats import Counters, LockWaitSampler, observer, settled
from txnlab.errors import ScenarioError, ServerError, TxnlabError, UsageError
from txnlab.levels import Level
from txnlab.runner.execute import scenario_sql_failure
from txnlab.runner.schemas import build_schema
from txnlab.scenario.model import Scenario, Workload
from txnlab.server.connect import connect, with_params
from txnlab.server.scratch import ScratchDatabase

# progress(label, fraction): the run now going on ("read committed · 8 clients · txnlab")
# and how far along it is, 0.0 to 1.0; called about ten times a second.
Progress = Callable[[str, float], None]
TICK_SECONDS = 0.1
NUMBER = (int, float, Decimal)  # what a measure's SQL may return
# How a stopped client's reason starts when the connection, not the workload, failed: no
# SQLSTATE (libpq lost the socket), class 08 (connection exception), class 57 (operator
# intervention: pg_terminate_backend, a shutdown). PostgreSQL docs, Appendix A.
CONNECTION_LOST = ("no SQLSTATE", "08", "57", "pgbench client lost its connection")
# Why the server counted commits no client made. It counts every session of the database:
# an autovacuum worker the sampler saw, or one whose visit (it may find nothing to do) began
# and ended between two samples.
AUTOVACUUM_SEEN = ": an autovacuum worker ran in the database during the run, and its transactions count there"
UNSEEN_SESSIONS = (": the server counts the commits of every session in the database, autovacuum's too, "
                   "and a visit of a few ms can fall between two lock-wait samples")


def run_bench(server_dsn: str, plan: BenchPlan, progress: Progress | None = None) -> list[LoadResult]:
    """Measure `plan` on the server at `server_dsn` inside one scratch database, dropped at
    the end however the run ends; results in plan order (level, then clients, then tool).

    Raises UsageError (exit 2) for a scenario without a workload or pgbench asked for a
    Python workload, ScenarioError (exit 2) for workload SQL that fails, ServerError (exit 3)
    when the server cannot be used."""
    scenario = plan.scenario
    workload = benchable_workload(scenario, plan.pgbench)
    transaction = _transaction(scenario, workload)
    tools = ("txnlab", "pgbench") if plan.pgbench else ("txnlab",)
    report = progress or (lambda label, fraction: None)
    results = []
    scratch = ScratchDatabase(server_dsn)
    with scratch as dsn:
        watcher = observer(server_dsn)
        try:
            count = 0
            for level in plan.levels:
                for clients in plan.clients:
                    for tool in tools:
                        count += 1
                        run = _Run(scenario, workload, transaction, plan, level, clients, tool, f"txnlab_bench_{count}")
                        results.append(run.measure(server_dsn, dsn, scratch.name, watcher, report))
        finally:
            watcher.close()
    return results


def benchable_workload(scenario: Scenario, pgbench: bool) -> Workload:
    """The scenario's workload, if it can be benched as asked; UsageError (exit 2) when it has
    none, or when pgbench is asked for a Python function workload (pgbench runs SQL scripts)."""
    workload = scenario.workload
    if workload is None:
        raise UsageError(f"{scenario.name} has no workload: section, so it cannot be benched")
    if pgbench and workload.script is None:
        raise UsageError(
            f"pgbench runs SQL workloads only; {scenario.name}'s workload is Python function {workload.function}"
        )
    return workload


def _transaction(scenario: Scenario, workload: Workload) -> Transaction:
    if workload.script is None:
        return Transaction(function=workload.function, module=scenario.source)
    try:
        return Transaction(script=parse_script(workload.script))
    except ScriptError as exc:
        raise _script_failure(scenario, exc.line, exc.problem) from None


def _script_failure(scenario: Scenario, line: int | None, problem: str) -> ScenarioError:
    """The workload script's line `line` (1-based) is at fault: `FILE:LINE: problem`."""
    return ScenarioError(scenario.where("workload.script", (line or 1) - 1), f"workload script: {problem}")


class _Run:
    """One measured run: one tool, one level, one client count, in schema `schema`."""

    def __init__(
        self, scenario: Scenario, workload: Workload, transaction: Transaction, plan: BenchPlan, level: Level,
        clients: int, tool: str, schema: str,
    ) -> None:
        self.scenario, self.workload, self.transaction, self.plan = scenario, workload, transaction, plan
        self.level, self.clients, self.tool, self.schema = level, clients, tool, schema
        self.label = f"{level.value} · {clients} client{'s' if clients != 1 else ''} · {tool}"

    def measure(
        self, server_dsn: str, dsn: str, database: str, watcher: psycopg2.extensions.connection, report: Progress,
    ) -> LoadResult:
        report(self.label, 0.0)
        self._build(dsn)
        session_dsn = _with_options(dsn, session_options(self.level.sql, self.schema))
        with LockWaitSampler(server_dsn, database) as sampler:  # on from reading to reading: see autovacuum
            before = settled(watcher, database)
            if self.tool == "txnlab":
                outcome = self._txnlab(session_dsn, report)
            else:
                outcome = self._pgbench(dsn, report)
            after = settled(watcher, database)
        report(self.label, 1.0)
        measures, invariants = self._check(dsn)
        notes = list(outcome.notes)
        if sampler.problem:
            notes.append(f"lock waits not sampled: {sampler.problem}")
        return outcome.result(self, before, after, sampler, measures, invariants, notes)

    def _build(self, dsn: str) -> None:
        conn = connect(dsn, autocommit=True, application_name="txnlab bench setup")
        try:
            build_schema(conn, self.scenario, self.schema)
            with conn.cursor() as cur:
                for index, sql in enumerate(self.workload.setup):
                    try:
                        cur.execute(sql)
                    except psycopg2.Error as exc:
                        raise scenario_sql_failure(
                            self.scenario, f"workload.setup.{index}", "workload setup SQL", exc, sql,
                            connection=conn, label="the bench setup connection", schema=self.schema,
                        ) from None
        finally:
            conn.close()

    def _txnlab(self, session_dsn: str, report: Progress) -> _Outcome:
        plan = self.plan
        load = Load(
            session_dsn, self.transaction, self.clients, duration_s=plan.duration_s, transactions=plan.transactions,
            retries=plan.retries, seed=plan.seed,
        )
        try:
            total = plan.transactions * self.clients if plan.transactions else None
            while not load.done():
                if total:
                    report(self.label, min(1.0, load.live() / total))
                else:
                    report(self.label, min(1.0, (time.monotonic() - load.started) / (plan.duration_s or 1.0)))
                time.sleep(TICK_SECONDS)
            results = load.finish()
        finally:
            load.stop()
        return self._from_clients(results)

    def _from_clients(self, results: list[ClientResult]) -> _Outcome:
        stopped = [r for r in results if r.stopped]
        if stopped:  # pgbench aborts such a client and calls its run incomplete: so is this one
            first = stopped[0]
            raise self._stopped(first.stopped or "", _workload_failure(self.scenario, self.transaction, first, self.label))
        ran = [r for r in results if r.started]
        window = max(r.ended for r in ran) - min(r.started for r in ran) if ran else 0.0
        latencies = [value for r in results for value in r.latencies_ms]
        return _Outcome(
            committed=sum(r.committed for r in results), duration_s=window, latencies=latencies,
            retries=sum(r.retries for r in results),
            failed=sum(r.serialization_failures + r.deadlock_failures for r in results),
            serialization_errors=sum(r.errors_40001 for r in results),
            deadlock_errors=sum(r.errors_40p01 for r in results),
            notes=tuple(f"client {r.client} stopped: {r.stopped}" for r in stopped),
        )

    def _stopped(self, reason: str, failure: ScenarioError) -> TxnlabError:
        """A client stopped on an error other than 40001/40P01: the workload failed at this level
        (ScenarioError, exit 2), or the server ended the connection (ServerError, exit 3)."""
        if reason.startswith(CONNECTION_LOST):
            return ServerError(f"the server ended a bench client's connection in the run {self.label}: {reason}")
        return failure

    def _pgbench(self, dsn: str, report: Progress) -> _Outcome:
        plan = self.plan
        script = self.workload.script or ""
        started = time.monotonic()

        def tick() -> None:
            if plan.duration_s:
                report(self.label, min(1.0, (time.monotonic() - started) / plan.duration_s))

        result: PgbenchResult = run_pgbench(
            dsn, script, session_options(self.level.sql, self.schema), self.clients, duration_s=plan.duration_s,
            transactions=plan.transactions, retries=plan.retries, seed=plan.seed, tick=tick,
        )
        if result.aborted:
            raise self._stopped(result.aborted[0], _script_failure(self.scenario, None, f"failed in the run {self.label}: "
                                                                                       f"{result.aborted[0]}"))
        notes = []
        if plan.duration_s is not None and plan.duration_s != max(1, round(plan.duration_s)):
            notes.append(f"pgbench runs whole seconds: -T {max(1, round(plan.duration_s))}")
        failed = result.serialization_failures + result.deadlock_failures
        return _Outcome(
            committed=result.committed, duration_s=result.duration_s, latencies=list(result.latencies_ms),
            retries=result.retries, failed=failed,
            serialization_errors=None, deadlock_errors=None, notes=tuple(notes),
            pgbench_failures=(result.serialization_failures, result.deadlock_failures),
        )

    def _check(self, dsn: str) -> tuple[dict[str, float], dict[str, bool]]:
        """The workload's measures (numbers: a whole number stays exact) and invariants (booleans)
        on the final data; then the run's schema is dropped, so that the data of the runs before
        gives autovacuum nothing to visit the database for during the next one."""
        invariants = self.workload.invariants or self.scenario.invariants
        prefix = "workload.invariant" if self.workload.invariants else "invariant"
        conn = connect(_with_options(dsn, f"-c search_path={self.schema}"), autocommit=True,
                       application_name="txnlab bench check")
        try:
            measures = {name: _exact(value) for name, value in
                        self._each(conn, self.workload.measures, "workload.measure", "measure", NUMBER)}
            checked = {name: value for name, value in self._each(conn, invariants, prefix, "invariant", (bool,))}
            with conn.cursor() as cur:
                cur.execute(f"DROP SCHEMA {self.schema} CASCADE")
        finally:
            conn.close()
        return measures, checked

    def _each(
        self, conn: psycopg2.extensions.connection, queries: Mapping[str, str], prefix: str, what: str,
        kinds: tuple[type, ...],
    ) -> Iterator[tuple[str, Any]]:
        """(name, value) of each query's one value; ScenarioError pointing at the query when it
        fails or returns anything but one value of `kinds`."""
        with conn.cursor() as cur:
            for name, sql in queries.items():
                try:
                    cur.execute(sql)
                    rows = cur.fetchall() if cur.description is not None else []
                except psycopg2.Error as exc:
                    raise scenario_sql_failure(
                        self.scenario, f"{prefix}.{name}", f"{what} {name}", exc, sql, connection=conn,
                        label="the bench check connection", schema=self.schema,
                    ) from None
                if len(rows) != 1 or len(rows[0]) != 1 or not isinstance(rows[0][0], kinds):
                    expected = "a boolean" if kinds == (bool,) else "a number"
                    got = f"{len(rows)} rows" if len(rows) != 1 else repr(rows[0])
                    raise ScenarioError(self.scenario.where(f"{prefix}.{name}"),
                                        f"{what} {name} must return one row of one column, {expected}; got {got}")
                yield name, rows[0][0]


def _exact(value: int | float | Decimal) -> int | float:
    """A measure's value: an integer (or a whole numeric) kept exact, as Python's int (JSON keeps
    it whole: 9007199254740993 stays itself), anything else a float."""
    if isinstance(value, int) or (isinstance(value, Decimal) and value == value.to_integral_value()):
        return int(value)
    return float(value)


def _with_options(dsn: str, options: str) -> str:
    """`dsn` with `options` added to the startup options it already has (the user's stay)."""
    existing = psycopg2.extensions.parse_dsn(dsn).get("options", "")
    return with_params(dsn, options=f"{existing} {options}".strip())


def _workload_failure(scenario: Scenario, transaction: Transaction, result: ClientResult, label: str) -> ScenarioError:
    """A client stopped on an error a retry cannot cure: the workload is at fault (at the script
    line that failed, for a script)."""
    what = f"failed in the run {label}, client {result.client}: {result.stopped}"
    if transaction.script is not None:
        return _script_failure(scenario, result.stopped_line, what)
    return ScenarioError(str(scenario.source), f"workload function {transaction.function} {what}")


class _Outcome:
    """A tool's own account of a run, before the server's counts are set beside it."""

    def __init__(
        self, *, committed: int, duration_s: float, latencies: list[float], retries: int, failed: int,
        serialization_errors: int | None, deadlock_errors: int | None, notes: tuple[str, ...],
        pgbench_failures: tuple[int, int] | None = None,
    ) -> None:
        self.committed, self.duration_s, self.latencies = committed, duration_s, latencies
        self.retries, self.failed, self.notes = retries, failed, notes
        self.serialization_errors, self.deadlock_errors = serialization_errors, deadlock_errors
        self.pgbench_failures = pgbench_failures

    def result(
        self, run: _Run, before: Counters | None, after: Counters | None, sampler: LockWaitSampler,
        measures: dict[str, float], invariants: dict[str, bool], notes: list[str],
    ) -> LoadResult:
        counted = before is not None and after is not None
        committed = after.committed_since(before) if counted else None  # type: ignore[union-attr, arg-type]
        rolled_back = after.rolled_back - before.rolled_back if counted else None  # type: ignore[union-attr]
        server_deadlocks = after.deadlocks - before.deadlocks if counted else None  # type: ignore[union-attr]
        if not counted:
            notes.append("the server keeps no pg_stat_database counts for the database: tps is the tool's own count")
        elif committed != self.committed:
            difference = committed - self.committed  # type: ignore[operator]
            notes.append(
                f"the server committed {abs(difference)} transaction(s) {'more' if difference > 0 else 'fewer'} "
                f"than {run.tool} counted ({committed} against {self.committed})"
                + ("" if difference < 0 else AUTOVACUUM_SEEN if sampler.autovacuum else UNSEEN_SESSIONS)
            )
        deadlocks, serialization = self._errors(server_deadlocks, notes)
        return LoadResult(
            scenario=run.scenario.name, tool=run.tool, level=run.level, clients=run.clients,
            duration_s=self.duration_s, committed_server=committed, rolled_back_server=rolled_back,
            committed_client=self.committed, latency=latency(self.latencies), retries=self.retries,
            serialization_failures=serialization, deadlocks=deadlocks, failed=self.failed,
            lock_wait_ms=sampler.wait_ms, lock_waits=sampler.waits, measures=measures, invariants=invariants,
            notes=tuple(notes),
        )

    def _errors(self, server_deadlocks: int | None, notes: list[str]) -> tuple[int, int]:
        """(deadlocks, serialization errors) met, as described in the module docstring."""
        if self.serialization_errors is not None and self.deadlock_errors is not None:
            if server_deadlocks is not None and server_deadlocks != self.deadlock_errors:
                notes.append(f"the server detected {server_deadlocks} deadlock(s), the clients met {self.deadlock_errors}")
            return self.deadlock_errors if server_deadlocks is None else server_deadlocks, self.serialization_errors
        serialization_failed, deadlock_failed = self.pgbench_failures or (0, 0)
        if server_deadlocks is None:
            notes.append("pgbench's retries are counted as serialization errors: the server keeps no deadlock count")
            return deadlock_failed, self.retries + serialization_failed
        return server_deadlocks, max(0, self.retries + self.failed - server_deadlocks)


def latency(values_ms: Iterable[float]) -> Latency | None:
    """Median, p95 and p99 (nearest rank) of the committed transactions' latencies, in ms."""
    ordered = sorted(values_ms)
    if not ordered:
        return None

    def rank(fraction: float) -> float:
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    return Latency(median_ms=rank(0.5), p95_ms=rank(0.95), p99_ms=rank(0.99))

