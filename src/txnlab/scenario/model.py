"""The validated scenario model: plain frozen dataclasses, no I/O and no database.

The shape follows PostgreSQL's isolationtester: setup SQL, sessions with their own
setup and teardown, named steps each owned by one session, and permutations (orders
in which to run the steps). On top of that a scenario carries what a reader needs
(title, summary, narration) and what a checker needs (expectations per level).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from txnlab.levels import Level

Rows = tuple[tuple[Any, ...], ...]

# `${step.column}` in a step's SQL is replaced by that column's value in the first row
# the named earlier step returned: how a scenario says "the application computed this
# from what it read", like the 2017 blog's read-then-write update_balance.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][\w-]*)\.([A-Za-z_]\w*)\}")


@dataclass(frozen=True)
class Step:
    """One SQL command sent by one session."""

    name: str
    session: str
    sql: str
    narration: str | None = None

    @property
    def references(self) -> list[tuple[str, str]]:
        """The (step, column) pairs this step's SQL reads through `${step.column}`."""
        return PLACEHOLDER.findall(self.sql)


@dataclass(frozen=True)
class SessionSpec:
    """A connection taking part in the scenario.

    By default a session behaves like application code using psycopg2: the first
    statement implicitly opens a transaction at the run's isolation level. With
    `autocommit` the statements run exactly as written, as in psql or
    isolationtester, so a step must say `BEGIN` itself.
    """

    name: str
    setup: tuple[str, ...] = ()
    teardown: tuple[str, ...] = ()
    autocommit: bool = False
    level: Level | None = None  # pins this session's level whatever the run's level
    read_only: bool | None = None
    deferrable: bool | None = None
    # The Python driver the session speaks through (runner.drivers: psycopg2, psycopg,
    # asyncpg); `driver_pinned` when the scenario chose it (`driver:`), so that
    # `txnlab run --driver` may not change it.
    driver: str = "psycopg2"
    driver_pinned: bool = False


@dataclass(frozen=True)
class Blocker:
    """A marker on a step of a permutation line, as PostgreSQL's isolationtester defines them
    (src/test/isolation/README, "Dealing with race conditions"): the step is not reported as
    completed until the condition holds. `step(*)`: reported waiting as soon as it is sent
    (`once`); `step(other)`: not before `other`'s session has finished `other`;
    `step(other notices N)`: not before `other`'s session has sent N more notices."""

    step: str | None = None  # the other step; None for `*`
    notices: int | None = None  # with `step`: how many notices its session must send first

    @property
    def once(self) -> bool:
        return self.step is None


@dataclass(frozen=True)
class Condition:
    """A fact about a run: a step returned these rows, waited, failed with a SQLSTATE or
    succeeded; an invariant held (or not); the scenario's anomaly happened (or not)."""

    step: str | None = None
    rows: Rows | None = None
    blocked: bool | None = None
    error: str | None = None  # a SQLSTATE, or "none" for a step that succeeded
    invariant: str | None = None
    holds: bool | None = None
    anomaly: bool | None = None


@dataclass(frozen=True)
class Claim:
    """Something said about PostgreSQL (by the 2017 blog, say), checked by running the scenario."""

    says: str
    level: Level  # the level the claim is about
    true_if: tuple[Condition, ...]  # the claim is true when all of these hold at that level
    holds: bool  # what PostgreSQL really does: is the claim true?
    source: str | None = None


@dataclass(frozen=True)
class AnomalyRule:
    """How to tell from a run whether the anomaly happened: all conditions hold."""

    name: str
    observed_if: tuple[Condition, ...]


@dataclass(frozen=True)
class Expectation:
    """What PostgreSQL does at one isolation level.

    `blocked`, `errors` and `skipped` are exact: a step that blocks, fails or is
    skipped without being listed is a mismatch. `blocked_by` is exact per step it names
    (the sessions a step waited for when its wait was first detected); `notices` is exact
    per step in number and order, each text contained in its notice; `error_details`
    (text the error's DETAIL contains), `rows`, `rowcount`, `holds` and `invariants` are
    checked for the names given. `alternatives` are other outcomes the server may choose (its
    own races): each is a complete Expectation, named, with no alternatives of its own.
    """

    blocked: frozenset[str] = frozenset()
    blocked_by: Mapping[str, frozenset[str]] = field(default_factory=dict)  # step -> session names
    errors: Mapping[str, str] = field(default_factory=dict)  # step -> SQLSTATE
    error_details: Mapping[str, str] = field(default_factory=dict)  # step -> text its DETAIL contains
    skipped: frozenset[str] = frozenset()  # steps never sent: a ${step.column} they need was not read
    rows: Mapping[str, Rows] = field(default_factory=dict)
    # step -> the locks its session holds right after it, sorted, in the capture view's words
    # (runner/observe.py); exact for each step named. The runner reads them only for these steps.
    holds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rowcount: Mapping[str, int] = field(default_factory=dict)  # step -> rows affected (cursor.rowcount)
    notices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # step -> one text per notice
    # step -> what its driver put on the wire for it (capture: true), exact, message by message
    # with runs of whitespace as one space: the driver's implicit BEGIN, its SAVEPOINT, its pool's reset.
    sent: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # step -> the server's state of the step's session right after it (capture: true), as
    # pg_stat_activity.state says it: "idle", "idle in transaction", "idle in transaction (aborted)".
    states: Mapping[str, str] = field(default_factory=dict)
    invariants: Mapping[str, bool] = field(default_factory=dict)
    anomaly: bool | None = None  # True: the anomaly happens at this level
    note: str | None = None  # one line for the reader: why this level behaves so
    name: str | None = None  # an accepted alternative's name; None for the expectation itself
    alternatives: tuple[Expectation, ...] = ()

    @property
    def may_fail(self) -> frozenset[str]:
        """Steps that fail in this expectation or in any accepted alternative."""
        return frozenset(self.errors).union(*(a.errors for a in self.alternatives))

    @property
    def reads_locks_after(self) -> frozenset[str]:
        """Steps after which the runner reads the session's locks: those a `holds:` names,
        here or in any accepted alternative."""
        return frozenset(self.holds).union(*(a.holds for a in self.alternatives))


@dataclass(frozen=True)
class Workload:
    """What `txnlab bench` runs as a load: the one transaction every client repeats, the data
    it runs on, and what to count afterwards (docs/bench.md).

    The transaction is either `script`, a pgbench custom script (`\\set name expression`
    lines, SQL statements ending in `;` or in `\\gset`, `:name` variables; see bench/script.py
    for the subset), so that pgbench can run the very same text; or `function`, the name of a
    function in a Python scenario's module, `function(conn, rng) -> None`, called with a
    psycopg2 connection (not autocommit; the run's level is its default) and a
    `random.Random`: application logic such as the 2017 blog's read-then-write update_balance.
    Exactly one of the two is set.
    """

    script: str | None = None
    function: str | None = None
    setup: tuple[str, ...] = ()  # SQL run after the scenario's setup, before each measured run: the data size
    measures: Mapping[str, str] = field(default_factory=dict)  # name -> SQL returning one number (e.g. lost_updates)
    invariants: Mapping[str, str] = field(default_factory=dict)  # name -> SQL returning one boolean
    summary: str | None = None  # one paragraph for the reader: what the load does and what it shows


@dataclass(frozen=True)
class Scenario:
    """A validated scenario, ready for the runner."""

    name: str
    title: str
    summary: str
    source: Path
    sessions: tuple[SessionSpec, ...]
    steps: Mapping[str, Step]
    permutations: tuple[tuple[str, ...], ...]
    setup: tuple[str, ...] = ()
    teardown: tuple[str, ...] = ()
    invariants: Mapping[str, str] = field(default_factory=dict)  # name -> SQL returning one boolean
    final: tuple[str, ...] = ()  # SQL whose rows show the final committed state after the run
    expectations: Mapping[Level, Expectation] = field(default_factory=dict)
    anomaly: AnomalyRule | None = None
    tags: tuple[str, ...] = ()
    levels: tuple[Level, ...] = tuple(Level)
    references: tuple[str, ...] = ()  # documentation a reader can check the claim against
    capture: bool = False  # record what the driver sent and the server's view after each step
    claim: Claim | None = None
    play: Callable[..., None] | None = None  # Python scenarios: drives the sessions itself
    # Where each piece of SQL starts in the source file, so a failure can point at it.
    # Keys: "setup.N", "teardown.N", "session.NAME.setup.N", "session.NAME.teardown.N",
    # "step.NAME", "invariant.NAME", "final.N", and "play" (the line of a Python scenario's play()).
    lines: Mapping[str, int] = field(default_factory=dict)
    # Run as PostgreSQL's isolationtester runs a spec (a `.spec` source): every session is
    # a plain connection with the server's defaults (no level set, no implicit BEGIN), the
    # objects live in a fresh database's `public` schema, and steps are sent as written.
    isolationtester: bool = False
    # Blocker markers of each permutation line, parallel to `permutations`: markers[i][j]
    # are the markers of step j of permutation i (empty: none). Empty when no line has any.
    markers: tuple[tuple[tuple[Blocker, ...], ...], ...] = ()
    # A *multi-driver* Python scenario's `drivers:`: the drivers its play() supports, which
    # `txnlab run --driver` may choose among (empty: not declared; see `runs_on`).
    drivers: tuple[str, ...] = ()
    # The load `txnlab bench` runs (None: the scenario has no `workload:` and cannot be benched).
    # Its invariants default to the scenario's own. Source lines under the keys
    # "workload.script", "workload.setup.N", "workload.measure.NAME", "workload.invariant.NAME".
    workload: Workload | None = None
    # A test's interleaving of its own functions (runner.interleave): no steps or expectations
    # of its own; the test's assertions are its check.
    interleaving: bool = False

    def session(self, name: str) -> SessionSpec:
        return next(s for s in self.sessions if s.name == name)

    @property
    def not_driver_neutral(self) -> str | None:
        """Why `txnlab run --driver` cannot run this scenario through another driver, or None
        when it can: a SQL scenario (YAML) none of whose sessions pins `driver:`. A Python
        scenario is written against one driver's API; a `.spec` runs libpq sessions of its own."""
        if self.isolationtester:
            return "a .spec scenario runs isolationtester's own libpq sessions"
        if self.play is not None:
            verb = "declares" if self.drivers else "is written for"
            return f"a Python scenario runs only on the drivers it {verb} ({', '.join(self.runs_on)})"
        pinned = [f"{s.name}: {s.driver}" for s in self.sessions if s.driver_pinned]
        return f"its sessions pin their driver ({', '.join(pinned)})" if pinned else None

    @property
    def runs_on(self) -> tuple[str, ...]:
        """The drivers a Python scenario's play() is written for: its `drivers:`, else the
        drivers its pinned sessions speak (an asyncpg lesson's app session; the sessions that
        only watch speak the default psycopg2), else psycopg2, which every session speaks."""
        pinned = tuple(dict.fromkeys(s.driver for s in self.sessions if s.driver_pinned))
        return self.drivers or pinned or tuple(dict.fromkeys(s.driver for s in self.sessions))

    def runs_as_written_on(self, driver: str) -> bool:
        """Whether `--driver driver` names what this scenario already runs on, so it runs as
        is: every session speaks `driver`, or a Python scenario is written for it (runs_on).
        A `.spec` never does: its sessions are isolationtester's libpq connections."""
        if self.isolationtester:
            return False
        if self.play is not None and driver in self.runs_on:
            return True
        return all(s.driver == driver for s in self.sessions)

    def accepts_driver(self, driver: str) -> bool:
        """Whether `txnlab run --driver` may run this scenario through `driver`: it is
        driver-neutral, multi-driver with `driver` among its `drivers:`, or already runs
        on `driver` (runs_as_written_on)."""
        return self.not_driver_neutral is None or driver in self.drivers or self.runs_as_written_on(driver)

    def through(self, driver: str) -> Scenario:
        """This scenario run with `--driver driver` (accepts_driver must hold): re-pointed
        with with_driver when it is neutral or declares `driver`, else as written."""
        if self.not_driver_neutral is None or driver in self.drivers:
            return self.with_driver(driver)
        return self

    @property
    def driver(self) -> str:
        """The run's driver for the scenario's sessions (a Python scenario's `run.driver`):
        the one its sessions that pin none speak (psycopg2, a multi-driver scenario's first
        declared driver, or what `with_driver` chose); the first session's when all pin one."""
        unpinned = [s.driver for s in self.sessions if not s.driver_pinned]
        return (unpinned or [self.sessions[0].driver])[0]

    def with_driver(self, driver: str) -> Scenario:
        """The same scenario with every session that pins no driver speaking through `driver`
        (see accepts_driver); a neutral scenario pins none."""
        sessions = tuple(s if s.driver_pinned else replace(s, driver=driver) for s in self.sessions)
        return replace(self, sessions=sessions)

    def where(self, key: str, offset: int = 0) -> str:
        """`file:line` of a piece of the scenario (see `lines`), `offset` lines into it;
        just the file when the line is unknown (Python documents have no lines)."""
        line = self.lines.get(key)
        return f"{self.source}:{line + offset}" if line is not None else str(self.source)

    @property
    def default_permutation(self) -> tuple[str, ...]:
        return self.permutations[0]

    def blockers(self, permutation: int, position: int) -> tuple[Blocker, ...]:
        """The markers of step `position` of permutation line `permutation` (see `markers`)."""
        return self.markers[permutation][position] if self.markers else ()
