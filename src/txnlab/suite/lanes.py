"""Specs run side by side: each lane is a thread with its own scratch database and Lab,
taking specs one after another as pg_isolation_regress does in its single database.

Specs of different lanes share the server but no database. A few specs look at state the
whole server shares (`RUNS_ALONE`); they run after the others, one at a time, with no other
lane busy. A spec that ends early leaves its objects behind (isolationtester skips the
teardown after a failed setup), so its lane moves to a new database before the next spec:
what one spec left must not change another's output, whichever lane runs it. Results
come back in the order the specs were given, each as soon as it and every spec before it
are done.

Cleaning up: the scratch databases are created and dropped by the main thread (where
signals arrive). However the run ends, Ctrl-C included, each lane's database is dropped
WITH (FORCE), which ends every session a lane still has, and what the specs changed on
the server outside them (roles, settings) is settled once for the whole run (see
server.footprint).
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from txnlab.errors import TxnlabError
from txnlab.runner.execute import CannotRun
from txnlab.runner.lab import Lab
from txnlab.scenario.model import Scenario
from txnlab.server.connect import connect
from txnlab.server.footprint import Footprint, ServerChange, maintenance_database
from txnlab.server.scratch import ScratchDatabase
from txnlab.signals import deferred_signals
from txnlab.suite.compare import Comparison, compare
from txnlab.suite.discovery import SpecCase
from txnlab.suite.runspec import SpecOutput

# A spec whose SQL reads or changes what the whole server shares (not one database) runs
# alone: server-wide statistics (SLRU, WAL, I/O, checkpointer counters), configuration,
# databases and tablespaces. Roles with fixed names are server-wide too, but no spec runs
# twice in one invocation, so they share lanes (runs proved it; see tests/test_spec_suite.py).
RUNS_ALONE = re.compile(
    r"\bpg_stat_(slru|wal|io|bgwriter|checkpointer|archiver|reset_shared|reset_slru)\b"
    r"|\bpg_get_multixact_stats\b|\balter\s+system\b|\bpg_reload_conf\b|\bcheckpoint\b"
    r"|\b(create|drop|alter)\s+(database|tablespace)\b",
    re.IGNORECASE,
)
PREPARED_TRANSACTION = re.compile(r"\bprepare\s+transaction\b", re.IGNORECASE)
# Connections a lane holds besides its spec's sessions: its scratch database's ownership lock
# (server.scratch: held on the maintenance database until the drop), its Lab's admin, lock
# monitor and schema builder, and the spec's control connection. The main thread keeps one
# spare to create a fresh database. (It said 3, and a server near max_connections refused
# lanes' connections: "too many clients".)
LANE_CONNECTIONS = 5
LANE_JOIN_SECONDS = 5.0  # after a forced drop, how long a lane may take to notice its sessions ended

RunSpec = Callable[[Lab, Scenario], SpecOutput]  # runs a spec in a lab (see suite.runspec)
Results = queue.Queue["tuple[int, SpecResult] | _Fresh | BaseException"]
OK, FAILED, NOT_APPLICABLE = "ok", "failed", "not applicable"


@dataclass(frozen=True)
class PlannedSpec:
    """A spec to run: its case (files) and its parsed scenario."""

    case: SpecCase
    scenario: Scenario

    @property
    def alone(self) -> bool:
        """Must it run with no other spec on the server (see RUNS_ALONE)?"""
        return any(RUNS_ALONE.search(sql) for sql in _all_sql(self.scenario))

    @property
    def weight(self) -> int:
        """Steps over all permutations: specs start heaviest first, so no long one starts last."""
        return sum(len(p) for p in self.scenario.permutations)


@dataclass
class SpecResult:
    """How one spec went. status: OK, FAILED or NOT_APPLICABLE; duration in seconds (0 when
    not run); reason: why it is not applicable, or why a failed spec has no output; output:
    what txnlab printed (None when not run); comparison: against the expected files; lane:
    which lane ran it (0 for the first; None when not run)."""

    planned: PlannedSpec
    status: str
    duration: float = 0.0
    reason: str | None = None
    output: str | None = None
    comparison: Comparison | None = None
    lane: int | None = None


def not_applicable_reason(planned: PlannedSpec, max_prepared_transactions: int) -> str | None:
    """Why this server cannot run the spec, before trying (None: it can). The rules:
    no expected output to compare with; PREPARE TRANSACTION with max_prepared_transactions = 0
    (PostgreSQL's own schedule leaves those specs out unless the server allows them). The
    third rule needs a run: see Suite._one."""
    case = planned.case
    if not case.expected:
        return f"no expected output ({case.name}.out) in {case.expected_dir}"
    if max_prepared_transactions == 0 and any(PREPARED_TRANSACTION.search(s) for s in _all_sql(planned.scenario)):
        return "it uses PREPARE TRANSACTION and this server's max_prepared_transactions is 0"
    return None


def _all_sql(scenario: Scenario) -> Iterator[str]:
    yield from scenario.setup
    yield from scenario.teardown
    for session in scenario.sessions:
        yield from session.setup
        yield from session.teardown
    for step in scenario.steps.values():
        yield step.sql


@dataclass(frozen=True)
class _Fresh:
    """A lane's request to the main thread: replace its database (lane `number`), whose
    last spec left objects behind, and send the new one's DSN (None: the run is stopping)."""

    number: int
    reply: queue.Queue[str | None]


class Suite:
    """Runs planned specs in `jobs` lanes on the server at `server_dsn`.

    `run_spec` produces a spec's output in a lab; `lab_options` go to each Lab (step_timeout);
    `undo_server_changes` as open_lab's (txnlab's own embedded server). `results` is the
    folder the outputs are written to (`--results`), which the diffs name. After `run`,
    `server_changes` lists what the specs left on the server outside their databases.
    """

    def __init__(self, server_dsn: str, jobs: int, run_spec: RunSpec, *, undo_server_changes: bool = False,
                 results: Path | None = None, **lab_options: float) -> None:
        self.server_dsn = server_dsn
        self.results = results
        self.jobs = max(1, jobs)
        # After run: the lanes it started; fewer than jobs when the specs to run are fewer or
        # the server's free connections cannot hold them all.
        self.lanes = 0
        self.run_spec = run_spec
        self.undo = undo_server_changes
        self.lab_options = lab_options
        self.server_changes: list[ServerChange] = []
        self.server_version = ""
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._databases: dict[int, ScratchDatabase] = {}  # each lane's current database

    def run(self, planned: Sequence[PlannedSpec]) -> Iterator[SpecResult]:
        """Each spec's result, in the order of `planned`, as soon as it is known.

        Raises ServerError (exit 3) when the server cannot be used (unreachable, a lost
        connection of txnlab's own, no scratch database); the lanes are stopped and their
        databases dropped first, as on Ctrl-C."""
        scratches: list[ScratchDatabase] = []
        footprint: Footprint | None = None
        try:
            # On the maintenance database: the lanes' databases may be dropped first (see _end).
            footprint = Footprint(self.server_dsn, maintenance_database(self.server_dsn), undo=self.undo)
            yield from self._run_lanes(planned, scratches)
        finally:
            self._end(scratches, footprint)

    def _run_lanes(self, planned: Sequence[PlannedSpec], scratches: list[ScratchDatabase]) -> Iterator[SpecResult]:
        """First the specs that share the server, over up to `jobs` lanes, each lane starting
        as soon as its database exists (creating one takes a few hundred ms); then those
        that run alone, in lane 0. `scratches` receives each lane's database as it is made."""
        in_order = _InOrder()
        shared: queue.Queue[tuple[int, PlannedSpec]] = queue.Queue()
        alone: queue.Queue[tuple[int, PlannedSpec]] = queue.Queue()
        prepared, free_connections = self._server_limits()
        for index, spec in enumerate(planned):
            reason = not_applicable_reason(spec, prepared)
            if reason is not None:
                in_order.add(index, SpecResult(spec, NOT_APPLICABLE, reason=reason))
        runnable = sorted((i for i in range(len(planned)) if i not in in_order.waiting), key=lambda i: -planned[i].weight)
        for index in runnable:
            (alone if planned[index].alone else shared).put((index, planned[index]))
        results: Results = queue.Queue()
        widest = max((len(planned[i].scenario.sessions) for i in runnable), default=0)
        allowed = max(1, min(self.jobs, (free_connections - 1) // (LANE_CONNECTIONS + widest)))
        for number in range(allowed if runnable else 0):
            if number > 0 and shared.empty():
                break
            self._start(number, self._new_database(number, scratches), shared, results)
            self.lanes = number + 1
        yield from in_order.ready()
        yield from self._gather(results, in_order, scratches)
        if not alone.empty():
            self._start(0, self._databases[0].dsn, alone, results)
            yield from self._gather(results, in_order, scratches)
        yield from in_order.ready()

    def _new_database(self, number: int, scratches: list[ScratchDatabase]) -> str:
        """Create lane `number`'s (next) database, in the main thread; its DSN."""
        scratch = ScratchDatabase(self.server_dsn)
        scratches.append(scratch)
        scratch.create()
        self._databases[number] = scratch
        return scratch.dsn

    def _start(self, number: int, dsn: str, specs: queue.Queue[tuple[int, PlannedSpec]], results: Results) -> None:
        thread = threading.Thread(target=self._lane, args=(number, dsn, specs, results), name=f"txnlab lane {number}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _gather(self, results: Results, in_order: _InOrder, scratches: list[ScratchDatabase]) -> Iterator[SpecResult]:
        """Results as the lanes send them, until every lane has ended; a lane's exception is
        raised here, in the main thread, which also replaces a lane's spoilt database (the
        lane has closed its connections to it by then)."""
        while any(t.is_alive() for t in self._threads) or not results.empty():
            try:
                item = results.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, _Fresh):
                self._databases[item.number].drop()
                item.reply.put(self._new_database(item.number, scratches))
                continue
            in_order.add(*item)
            yield from in_order.ready()

    def _lane(self, number: int, dsn: str | None, specs: queue.Queue[tuple[int, PlannedSpec]],
              results: Results) -> None:
        """One lane's thread: specs from `specs` until none is left or the run stops. After a
        spec that left its objects behind (it ended early, or txnlab's run of it failed), the
        lane gets a new database, so that they cannot change the next spec's output."""
        lab: Lab | None = None
        try:
            while dsn is not None and not self._stopping.is_set():
                try:
                    index, spec = specs.get_nowait()
                except queue.Empty:
                    return
                if lab is None:
                    lab = Lab(dsn, **self.lab_options)
                    self.server_version = lab.server_version
                result, spoilt = self._one(lab, spec)
                result.lane = number
                results.put((index, result))
                if spoilt:
                    lab.close()
                    lab = None
                    reply: queue.Queue[str | None] = queue.Queue()
                    results.put(_Fresh(number, reply))
                    dsn = self._answer(reply)
        except BaseException as exc:  # ends the run: the main thread re-raises it
            self._stopping.set()
            results.put(exc)
        finally:
            if lab is not None:
                _quietly(lab.close)

    def _answer(self, reply: queue.Queue[str | None]) -> str | None:
        """The main thread's reply, or None once the run is stopping (it may never come)."""
        while not self._stopping.is_set():
            try:
                return reply.get(timeout=0.05)
            except queue.Empty:
                continue
        return None

    def _one(self, lab: Lab, spec: PlannedSpec) -> tuple[SpecResult, bool]:
        """Run one spec and compare its output; (result, whether the lane needs a new lab and
        database). An output that matches no expected file is not applicable when a setup
        failed for the server's side (SpecOutput.refused), as is CannotRun. Any other error
        of txnlab's (a step that hangs, even a lost connection) fails this spec only: the
        lane then starts again, and if the server is gone, that fails and ends the run (exit 3)."""
        started = time.perf_counter()
        try:
            output = self.run_spec(lab, spec.scenario)
        except CannotRun as exc:
            return SpecResult(spec, NOT_APPLICABLE, time.perf_counter() - started, reason=str(exc)), True
        except TxnlabError as exc:
            return SpecResult(spec, FAILED, time.perf_counter() - started, reason=str(exc)), True
        duration = time.perf_counter() - started
        name = spec.case.name
        output_name = str(results_path(self.results, name)) if self.results else f"{name}.out (txnlab's output, not written)"
        comparison = compare(output.text, spec.case.expected, output_name)
        if comparison.matched is not None:
            status, reason = OK, None
        elif output.refused is not None:
            status, reason = NOT_APPLICABLE, output.refused
        else:
            status, reason = FAILED, None
        result = SpecResult(spec, status, duration, reason=reason, output=output.text, comparison=comparison)
        return result, output.ended_early

    def _server_limits(self) -> tuple[int, int]:
        """(max_prepared_transactions, connections still free for txnlab): max_connections
        less those reserved for superusers and roles with pg_use_reserved_connections
        (PostgreSQL 16+) and those open now (this one included)."""
        conn = connect(self.server_dsn, autocommit=True, application_name="txnlab specs")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT current_setting('max_prepared_transactions')::int,"
                    " current_setting('max_connections')::int"
                    " - current_setting('superuser_reserved_connections')::int"
                    " - coalesce(current_setting('reserved_connections', true)::int, 0)"
                    " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int")
                prepared, free = cur.fetchone()
                return int(prepared), int(free)
        finally:
            conn.close()

    def _end(self, scratches: list[ScratchDatabase], footprint: Footprint | None) -> None:
        """Stop the lanes, settle the server's footprint, drop every lane's database (forced:
        that ends a lane's sessions even mid-step). A signal waits until it is all done."""
        with deferred_signals():
            self._stopping.set()
            busy = [t for t in self._threads if t.is_alive()]
            problems: list[BaseException] = []
            if busy:  # interrupted or failing: end the lanes' sessions now rather than wait for their steps
                for scratch in scratches:
                    _drop(scratch, problems)
                for thread in busy:
                    thread.join(LANE_JOIN_SECONDS)
            if footprint is not None:
                try:
                    self.server_changes.extend(footprint.settle())
                except TxnlabError as exc:
                    problems.append(exc)
            for scratch in scratches:
                _drop(scratch, problems)
            if problems:
                raise problems[0]


class _InOrder:
    """Results put back in the order the specs were given: `add` them as they come, and
    `ready` yields each one whose predecessors have all been yielded."""

    def __init__(self) -> None:
        self.waiting: dict[int, SpecResult] = {}
        self.next = 0

    def add(self, index: int, result: SpecResult) -> None:
        self.waiting[index] = result

    def ready(self) -> Iterator[SpecResult]:
        while self.next in self.waiting:
            yield self.waiting.pop(self.next)
            self.next += 1


def _drop(scratch: ScratchDatabase, problems: list[BaseException]) -> None:
    try:
        scratch.drop()
    except TxnlabError as exc:
        problems.append(exc)


def _quietly(close: Callable[[], None]) -> None:
    """Close a lab whose database may have been dropped under it: its connections are gone."""
    try:
        close()
    except Exception:  # noqa: BLE001 - the connections died with the database; nothing to release
        pass


def default_jobs() -> int:
    """Lanes by default: four per CPU, at most 8. Much of a spec's time is the server's timers
    and round trips, so lanes outnumber CPUs: on 2 CPUs, 8 lanes ran the 105 reproduced specs
    in 0.42-0.50 of pg_isolation_regress's time and 4 lanes in 0.45-0.55 (benchmarks/
    isolation_suite.py). A lane holds up to about ten connections (its lab, its spec's
    sessions, its database's owner): 8 lanes stay well under max_connections' default 100."""
    return max(2, min(8, 4 * (os.cpu_count() or 1)))


def results_path(folder: Path, name: str) -> Path:
    """Where `--results DIR` writes a spec's output: DIR/NAME.out, as pg_regress's results/."""
    return folder / f"{name}.out"
