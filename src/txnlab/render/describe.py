"""Words for events and verdicts, shared by the text, Markdown and HTML renderers."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from txnlab.checks import Finding, Verdict, holds_phrase
from txnlab.levels import Level
from txnlab.sql_spacing import collapse_layout
from txnlab.timeline import (
    BACKEND_PID, OWN_CONNECTION, SETUP_FAILED, SPEC_STOPS, ErrorInfo, Event, LockWait, Outcome, Timeline, wire_text,
)
from txnlab.values import row_cells

if TYPE_CHECKING:
    from txnlab.render.report import RunReport
    from txnlab.scenario import Scenario

MAX_ROWS_SHOWN = 4

# One mark per outcome that needs attention, shared by every renderer (single-width glyphs,
# so terminal tables stay aligned; shapes as well as colours, for colour-blind readers).
OUTCOME_MARKS = {
    Outcome.BLOCKED: "◷", Outcome.ERROR: "✗", Outcome.TIMEOUT: "⚠", Outcome.SKIPPED: "∅", Outcome.ENDED: "⊘",
    Outcome.NOTICE: "ℹ",
}


# Lock kinds in words, after PostgreSQL's docs: the view pg_locks (its `locktype` values and
# what page, tuple, classid, objid mean for each) and "Explicit Locking" (table-level, row-level,
# page-level and advisory locks), and pg_class.relkind for what a relation lock is on.
RELKINDS = {
    "r": "table", "p": "partitioned table", "i": "index", "I": "partitioned index", "S": "sequence",
    "m": "materialized view", "v": "view", "t": "TOAST table", "f": "foreign table", "c": "composite type",
}
LOCKTYPES = {
    "transactionid": "transaction id", "virtualxid": "virtual transaction id", "advisory": "advisory",
    "page": "page", "extend": "relation extension", "frozenid": "datfrozenxid update", "object": "object",
    "spectoken": "speculative insertion", "userlock": "user", "applytransaction": "apply transaction",
}
# Why a wait of each kind happens, for the workshop's lock line.
LOCK_MEANINGS = {
    "row via transaction": "it waits for the transaction that locked the row to commit or roll back",
    "row": "it queues for the row behind the session that is first in line for it",
    "transaction id": "it waits for that transaction to end, e.g. for the fate of a unique key it inserted",
    "virtual transaction id": "it waits for that transaction to end, as CREATE INDEX CONCURRENTLY does",
    "advisory": "the application's own lock on a number: a session-level one lasts until unlocked or "
    "the session ends, even past ROLLBACK; pg_advisory_xact_lock's until the transaction ends",
    "page": "hash and GIN indexes lock pages",
    "relation extension": "another session is adding pages to the relation",
    "speculative insertion": "it waits for another INSERT ... ON CONFLICT to finish inserting its row",
    "safe snapshot": "a SERIALIZABLE READ ONLY DEFERRABLE transaction waits for a snapshot no "
    "concurrent transaction can make unsafe",
}


def lock_kind(lock: LockWait) -> str:
    """What a lock is on, in words: "row", "table", "index", "sequence", "materialized view",
    "transaction id", "virtual transaction id", "advisory", "page", "relation extension",
    "speculative insertion", "safe snapshot" (no lock: `locktype` None), "object"...

    A wait for a transaction id is a row wait when the waiter holds that row's tuple lock
    (the monitor then fills in the row): see `LockWait`."""
    if lock.locktype is None:
        return "safe snapshot"
    if lock.locktype == "relation":
        return RELKINDS.get(lock.relkind or "", "relation")
    if lock.locktype == "tuple" or (lock.locktype == "transactionid" and lock.tuple is not None):
        return "row"
    return LOCKTYPES.get(lock.locktype, lock.locktype)


def lock_phrase(lock: LockWait) -> str:
    """A lock in words: its kind, mode and object, e.g. "row lock, ShareLock on the transaction
    that locked the row at ctid (0,2) of accounts", "table lock, AccessExclusiveLock on accounts",
    "advisory lock, ExclusiveLock on key 42"."""
    kind = lock_kind(lock)
    if kind == "safe snapshot":
        return "a safe snapshot"
    relation = lock.relation or "a relation"
    row = f"the row at ctid ({lock.page},{lock.tuple}) of {relation}"
    if lock.locktype == "transactionid":
        target = f"the transaction that locked {row}" if kind == "row" else "another transaction's id"
    else:
        target = {
            "tuple": row,
            "page": f"page {lock.page} of {RELKINDS.get(lock.relkind or '', 'relation')} {relation}",
            "advisory": f"key {lock.key}",
            "object": lock.key or "an object",
            "virtualxid": "another transaction's virtual id",
            "spectoken": "another transaction's insertion",
        }.get(lock.locktype, relation)
    return f"{kind} lock, {lock.mode} on {target}"


def lock_meaning(lock: LockWait) -> str:
    """Why a wait of this kind happens, in one clause (see LOCK_MEANINGS)."""
    kind = lock_kind(lock)
    if kind == "row" and lock.locktype == "transactionid":
        kind = "row via transaction"
    if lock.locktype == "relation":
        return f"a lock on the whole {kind}"
    return LOCK_MEANINGS.get(kind, f"a lock of type {lock.locktype}")


def result_phrase(event: Event) -> str:
    """What a step's result looks like in a timeline cell: rows, a row count, an error, a wait
    (who it waits for, and the lock in words; "now waits for" when a wait changed); every
    result of a step that returned several, in order, separated by "; " (see `result_phrases`)."""
    return "; ".join(result_phrases(event))


def result_phrases(event: Event) -> list[str]:
    """One phrase per result of the step, in order: a step that sent several statements (a
    `.spec` step's libpq session returns every result, `Event.results`) has one per result
    that returned rows, and one for each run of results that did not, their command statuses
    in order ("ok: BEGIN, NOTIFY ×4, COMMIT"), then its error if a later statement failed;
    every other step has one phrase."""
    sets = event.results
    if len(sets) < 2 and not (sets and event.error is not None):
        return [_event_phrase(event)]
    phrases: list[str] = []
    statuses: list[str] = []  # the current run of results without rows
    for result in [*sets, None]:
        if result is not None and result.columns is None:
            statuses.append(result.status or "ok")
            continue
        if statuses:
            phrases.append("ok: " + ", ".join(_counted(statuses)))
            statuses = []
        if result is not None:
            phrases.append(rows_phrase(result.columns or (), result.rows or (), result.column_types))
    if event.outcome is not Outcome.OK or event.error is not None:
        phrases.append(_event_phrase(event, after_wait=False))
    if event.after_wait:
        phrases[0] = "completed after the wait: " + phrases[0]
    return phrases


def _counted(words: Sequence[str]) -> list[str]:
    """Runs of the same word said once with their count: [NOTIFY, NOTIFY, COMMIT] -> [NOTIFY ×2, COMMIT]."""
    counted: list[tuple[str, int]] = []
    for word in words:
        if counted and counted[-1][0] == word:
            counted[-1] = (word, counted[-1][1] + 1)
        else:
            counted.append((word, 1))
    return [word if count == 1 else f"{word} ×{count}" for word, count in counted]


def _event_phrase(event: Event, *, after_wait: bool | None = None) -> str:
    """The phrase for an event's own result fields (its last result): see `result_phrase`."""
    if event.outcome is Outcome.NOTICE:
        return "still waiting; the server sent a notice" + ("s" if len(event.notices) > 1 else "")
    if event.outcome is Outcome.BLOCKED:
        waits_for = ", ".join(event.blocked_by) or "another session"
        detail = f" ({lock_phrase(event.lock)})" if event.lock else ""
        return f"{'now ' if event.wait_changed else ''}waits for {waits_for}{detail}"
    if event.outcome is Outcome.SKIPPED:
        return f"not sent: {event.error.message if event.error else 'a value it needs is missing'}"
    if event.outcome is Outcome.ENDED:
        return "the server ended the session" + (f": {error_phrase(event.error)}" if event.error else "")
    prefix = "completed after the wait: " if (event.after_wait if after_wait is None else after_wait) else ""
    if event.outcome is Outcome.TIMEOUT:
        return f"{prefix}cancelled after the step timeout"
    if event.error is not None:
        return f"{prefix}ERROR {error_phrase(event.error)}"
    if event.rolled_back:
        return f"{prefix}the server answered ROLLBACK: nothing was committed"
    if event.driver_sent_nothing:
        return f"{prefix}ok: the driver sent nothing, no transaction was open"
    if event.rows is not None:
        return prefix + rows_phrase(event.columns or (), event.rows, event.column_types)
    if event.rowcount is not None:
        return f"{prefix}{event.rowcount} row{'s' if event.rowcount != 1 else ''} affected"
    return prefix + "ok"


def error_phrase(error: ErrorInfo) -> str:
    """SQLSTATE and primary message, backends named (see `with_backends`)."""
    return (f"{error.sqlstate} " if error.sqlstate else "") + with_backends(error.message, error)


def with_backends(text: str, error: ErrorInfo) -> str:
    """`text` from the server with each backend pid it names said in the scenario's terms:
    "Process 812 waits for ... blocked by process 815" becomes "Session a (pid 812) waits for
    ... blocked by session b (pid 815)"; pids of no session or watched connection stay."""
    names = dict(error.backends)

    def named(match: re.Match[str]) -> str:
        who = names.get(int(match.group(2)))
        if who is None:
            return match.group(0)
        who = who[:1].upper() + who[1:] if match.group(1) == "P" else who
        return f"{who} (pid {match.group(2)})"

    return BACKEND_PID.sub(named, text)


def notification_lines(event: Event) -> list[str]:
    """The NOTIFY messages the session received, one line each, in isolationtester's words:
    `NOTIFY "channel" with payload "text" from s2` (a sender outside the run: `PID n`)."""
    return [f'NOTIFY "{n.channel}" with payload "{n.payload}" from {n.sender}' for n in event.notifications]


def sql_label(event: Event) -> str:
    """Whose SQL a setup or teardown event ran, in words: "setup", "s1's setup", "teardown"..."""
    parts = event.step.split(".")
    if parts[0] == "session" and len(parts) >= 3:
        return f"{parts[1]}'s {parts[2]}"
    return parts[0]


def sql_output_lines(events: Sequence[Event]) -> list[str]:
    """What setup or teardown SQL (`Timeline.setup`, `Timeline.teardown`) returned beyond a plain
    "ok", as isolationtester shows it: rows, errors with their details, notices, notifications;
    one line each, labelled by whose SQL it was. A session's own setup or teardown SQL is shown
    itself, on one line, before what it returned: it often sets the session's isolation level
    (`BEGIN ISOLATION LEVEL SERIALIZABLE`), which a .spec run sets nowhere else. Empty when only
    the spec's own setup ran and it just ran."""
    lines = []
    for event in events:
        said = [*error_lines(event), *event.notices, *notification_lines(event)]
        returned = any(r.columns is not None for r in event.result_sets()) or event.error is not None
        if event.session and event.sql.strip():  # a session's setup may set its level: the reader needs it
            lines.append(f"{sql_label(event)}: {' '.join(event.sql.split())}")
        if returned:
            lines.append(f"{sql_label(event)}: {result_phrase(event)}")
        lines += [f"{sql_label(event)}: {line}" for line in said]
    return lines


def error_lines(event: Event) -> list[str]:
    """The server's DETAIL, HINT and CONTEXT of a step's error, as psql labels them, one
    line each (a deadlock's DETAIL has a line per waiting backend), backends named."""
    error = event.error
    if error is None:
        return []
    lines = []
    for label, text in (("DETAIL", error.detail), ("HINT", error.hint), ("CONTEXT", error.context)):
        for index, line in enumerate((text or "").splitlines()):
            lines.append(f"{label}: {with_backends(line, error)}" if index == 0 else with_backends(line, error))
    return lines


def driver_status_phrase(status: str) -> str:
    """The driver's own view of the transaction, short enough for a timeline cell: the
    constant's name without its namespace (`INTRANS` for psycopg2's TRANSACTION_STATUS_INTRANS
    and psycopg 3's TransactionStatus.INTRANS: the drivers line names the driver); asyncpg's
    `is_in_transaction() = True` as it is."""
    if " " in status:
        return status
    return status.rpartition(".")[2].removeprefix("TRANSACTION_STATUS_")


# What a timeline says when the driver sent the step's SQL and nothing else (see sent_phrase).
SENT_AS_WRITTEN = "as written"


def sent_phrase(event: Event) -> str:
    """What the driver sent for a step, for a timeline: SENT_AS_WRITTEN when it sent exactly
    the step's SQL, compared as `sent:` expectations compare (timeline.wire_text: layout
    aside), so a statement is not printed twice; else every message, laid out as SQL is
    (sql_spacing.collapse_layout), joined by " · ". JSON keeps the messages exact."""
    if tuple(wire_text(m) for m in event.sent or ()) == (wire_text(event.sql),):
        return SENT_AS_WRITTEN
    return " · ".join(collapse_layout(m) for m in event.sent or ())


def driver_lines(event: Event) -> list[str]:
    """For capture scenarios: what the driver sent, the driver's own view of the transaction
    and the server's view afterwards; for a step a `holds:` expectation names, the locks its
    session held right after it."""
    lines = [f"sent: {sent_phrase(event)}"] if event.sent else []
    others = any(view.label != OWN_CONNECTION for view in event.server or ())
    if event.server and event.driver_status:  # with another connection in view, say whose view it is
        lines.append(f"driver{', this session' if others else ''}: {driver_status_phrase(event.driver_status)}")
    if event.holds is not None:
        lines.append(f"locks held: {', '.join(event.holds) or 'none'}")
    for view in event.server or ():
        holds = f", holds {', '.join(view.locks)}" if view.locks else ""
        who = "server" if view.label == OWN_CONNECTION else f"server, {view.label}"
        lines.append(f"{who}: {view.state or 'unknown'}{holds}")
    return lines


def rows_phrase(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], column_types: Sequence[str] | None = None
) -> str:
    """Rows in a timeline cell, `balance = 12345678901234567.89` or `(id=1, note=NULL) (id=2,
    note='NULL')`: each value as `txnlab.values.shown` writes it for its column's type (the
    server's text; NULL as NULL; text quoted). Without types, text is quoted and numbers are not."""
    if not rows:
        return "no rows"
    if len(columns) == 1 and len(rows) == 1:
        return f"{columns[0]} = {row_cells(rows[0], column_types)[0]}"
    shown = [
        "(" + ", ".join(f"{c}={v}" for c, v in zip(columns, row_cells(row, column_types))) + ")"
        for row in rows[:MAX_ROWS_SHOWN]
    ]
    more = f" +{len(rows) - MAX_ROWS_SHOWN} more" if len(rows) > MAX_ROWS_SHOWN else ""
    return " ".join(shown) + more


def verdict_line(verdict: Verdict) -> str:
    """One line: does the run match its expectation, and what happened to the anomaly; for a
    run no expectation applies to, why there is no verdict."""
    if verdict.unjudged is not None:
        return f"no verdict: {verdict.unjudged}"
    status = "as expected" if verdict.matches_expectation else "DIFFERS from the expectation"
    if verdict.matches_expectation and verdict.alternative:
        status = f"as expected (accepted alternative {verdict.alternative})"
    if verdict.could_not_run:
        status = "could not run on this server"
    if verdict.ended_early:
        status = "timed out, so what PostgreSQL would have done is unknown"
    parts = [f"{verdict.level.value}: {status}"]
    if verdict.anomaly is not None and verdict.anomaly_observed is not None:
        if verdict.anomaly_observed:
            parts.append(f"{verdict.anomaly} happens")
        else:
            parts.append(f"{verdict.anomaly} prevented" + (f" ({verdict.how})" if verdict.how else ""))
    if verdict.note:
        parts.append(verdict.note)
    return " — ".join(parts)


def mismatch_lines(verdict: Verdict) -> list[str]:
    lines = [_differs(f) for f in verdict.mismatches]
    for name, findings in verdict.alternatives_missed:
        lines.append(f"accepted alternative {name} differs too: " + "; ".join(map(_differs, findings)))
    if verdict.ended_early:
        lines.append(f"the run ended early: {verdict.ended_early}")
    if verdict.could_not_run:
        lines.append(f"could not run: {verdict.could_not_run}")
    return lines


@dataclass(frozen=True)
class FinalFact:
    """One line of a run's final state: a `final:` query and what it returned, or an
    invariant (`name`), its SQL and whether it held."""

    sql: str  # on one line
    result: str  # "balance = 70", "2 rows affected"; for an invariant "holds", "broken", "not evaluated"
    invariant: str | None = None


FINAL_STATE = "final state (committed, after the run)"


def final_state(report: RunReport) -> list[FinalFact]:
    """The punchline: each `final:` query's result, shown as a step's is, then each invariant."""
    facts = [FinalFact(" ".join(e.sql.split()), result_phrase(e)) for e in report.timeline.final]
    for name, sql in report.scenario.invariants.items():
        held = report.timeline.invariants.get(name)
        facts.append(FinalFact(" ".join(sql.split()), holds_phrase(held), name))
    return facts if report.timeline.could_not_run is None else []


def _differs(finding: Finding) -> str:
    return f"{finding.subject}: expected {finding.expected}, observed {finding.observed}"


def _as_is(text: str) -> str:
    return text


def named_title(scenario: Scenario) -> str:
    """A scenario's name and title for a heading, "atm-lost-update: The ATM loses money"; the
    name alone when the title is the name (a `.spec`'s, which has no title of its own)."""
    return scenario.name if scenario.title == scenario.name else f"{scenario.name}: {scenario.title}"


def runs_phrase(count: int) -> str:
    """"1 run", "4 runs"."""
    return f"{count} run{'' if count == 1 else 's'}"


SPEC_LEVEL = "as the spec sets it"


def level_label(report: RunReport) -> str:
    """The isolation level a run ran at, as every view names it: PostgreSQL's spelling ("read
    committed"), or for a `.spec` run SPEC_LEVEL: txnlab sets no level for a spec, whose sessions
    keep the server's default unless their SQL sets another (`BEGIN ISOLATION LEVEL ...`)."""
    return SPEC_LEVEL if report.scenario.isolationtester else report.verdict.level.value


def level_value(report: RunReport) -> str | None:
    """The level as JSON gives it: `level_label`'s, but null for a `.spec` run (see there)."""
    return None if report.scenario.isolationtester else report.verdict.level.value


def run_title(report: RunReport) -> str:
    """Which run this is: "atm-lost-update at READ COMMITTED"; a `.spec` run has no level of
    its own (its sessions keep the server's default, its SQL sets any other), so just its name."""
    if report.scenario.isolationtester:
        return report.scenario.name
    return f"{report.scenario.name} at {report.timeline.level.value.upper()}"


def runs_drivers_phrase(timelines: Sequence[Timeline]) -> str | None:
    """Which Python drivers (and versions) a set of runs spoke through, e.g. "drivers: asyncpg
    0.32.0, psycopg2 2.9.13", when any session of any run is not psycopg2 (the default, left
    unsaid, as in `drivers_phrase`); None otherwise. Under a matrix, which has no timeline."""
    used = {(name, version) for timeline in timelines for name, version in timeline.drivers.values()}
    if all(name == "psycopg2" for name, _ in used):
        return None
    return "drivers: " + ", ".join(f"{name} {version}" for name, version in sorted(used))


def drivers_phrase(timeline: Timeline) -> str | None:
    """Which Python driver (and version) each session spoke through, e.g. "drivers: psycopg 3.3.9
    (teller, report)", when any session is not psycopg2 (the default, left unsaid); None otherwise."""
    if all(name == "psycopg2" for name, _ in timeline.drivers.values()):
        return None
    by_driver: dict[tuple[str, str], list[str]] = {}
    for session in timeline.sessions:
        if session in timeline.drivers:
            by_driver.setdefault(tuple(timeline.drivers[session]), []).append(session)  # type: ignore[arg-type]
    parts = [f"{name} {version} ({', '.join(sessions)})" for (name, version), sessions in by_driver.items()]
    return "drivers: " + "; ".join(parts)


def permutation_phrase(report: RunReport) -> str | None:
    """Which permutation a run of several is: "permutation 3 of 70: a1 b1 a2 b2" (None for a
    run of the scenario's own single order)."""
    if report.place is None:
        return None
    number, count = report.place
    return f"permutation {number} of {count}: {' '.join(report.timeline.permutation)}"


def row_label(report: RunReport) -> str:
    """A matrix row's name: the scenario's, and for a run of several permutations, which one
    ("atm-lost-update #3: a1 b1 a2 b2")."""
    if report.place is None:
        return report.scenario.name
    return f"{report.scenario.name} #{report.place[0]}: {' '.join(report.timeline.permutation)}"


def happenings(timeline: Timeline) -> str:
    """What a run no expectation applies to did, for a matrix cell: "waits: b2; fails: a3
    (40001)", "no waits, no errors", "timed out" or "could not run"."""
    if timeline.could_not_run is not None:
        return "could not run"
    if timeline.ended_early is not None:
        return timeline.ended_early if timeline.ended_early in SPEC_STOPS else "timed out"
    waited = list(dict.fromkeys(e.step for e in timeline.events if e.outcome is Outcome.BLOCKED))
    failed = [f"{e.step} ({e.error.sqlstate or 'error'})" for e in timeline.events if e.error and e.outcome is Outcome.ERROR]
    parts = ([f"waits: {', '.join(waited)}"] if waited else []) + ([f"fails: {', '.join(failed)}"] if failed else [])
    return "; ".join(parts) or "no waits, no errors"


@dataclass(frozen=True)
class MatrixCell:
    """One run in a matrix: what happened, a mark, and what differs (after a ✗)."""

    words: str  # "prevented (aborted)", "aborts", "timed out", "could not run", "-"
    mark: str = ""  # MARK_AS_EXPECTED, MARK_DIFFERS, MARK_TIMED_OUT or ""
    detail: str = ""  # after MARK_DIFFERS: "unexpected", or "expected 40001, got 40P01"
    judged: bool = True  # False: no expectation applies; `words` say what happened (see `happenings`)


MARK_AS_EXPECTED, MARK_DIFFERS, MARK_TIMED_OUT = "✓", "✗", OUTCOME_MARKS[Outcome.TIMEOUT]
NOT_RUN = MatrixCell("-")


def matrix_cell(verdict: Verdict, words: str | None = None, *, mark_expected: bool = True) -> MatrixCell:
    """A run as a matrix cell: its outcome (or `words`, e.g. Hermitage's "aborts"); ✓ when as
    expected (unless `mark_expected` is False); ✗ with what differs; "timed out" with ⚠ for a run
    the step timeout stopped, whose outcome is unknown; "could not run", unmarked."""
    if verdict.could_not_run is not None:
        return MatrixCell(verdict.outcome)
    if verdict.ended_early in SPEC_STOPS:
        return MatrixCell(verdict.outcome)
    if verdict.ended_early is not None:
        return MatrixCell(verdict.outcome, MARK_TIMED_OUT)
    words = verdict.outcome if words is None else words
    if verdict.matches_expectation:
        return MatrixCell(words, MARK_AS_EXPECTED if mark_expected else "")
    if verdict.only_sqlstates_differ:
        changes = verdict.sqlstate_changes
        named = len(changes) > 1
        detail = "; ".join(f"{step + ': ' if named else ''}expected {want}, got {got}" for step, want, got in changes)
        return MatrixCell(words, MARK_DIFFERS, detail)
    return MatrixCell(words, MARK_DIFFERS, "unexpected")


def matrix_legend(cells: Sequence[MatrixCell], *, hermitage: bool = False) -> list[str]:
    """One line (plain text) for each mark and outcome word the cells use; `hermitage` for
    the anomaly table's words (possible, prevented, blocks, aborts)."""
    marks = {cell.mark for cell in cells}
    details = [cell.detail for cell in cells if cell.mark == MARK_DIFFERS]
    lines = [LEGEND[MARK_AS_EXPECTED]] if MARK_AS_EXPECTED in marks else []
    if any(not cell.judged for cell in cells):
        lines.append(LEGEND["unjudged"])
    if "unexpected" in details:
        lines.append(LEGEND["unexpected"])
    sqlstate = next((detail for detail in details if detail != "unexpected"), None)
    if sqlstate is not None:
        lines.append(f"{MARK_DIFFERS} {sqlstate}: {LEGEND['sqlstate']}")
    if hermitage:
        lines.append(LEGEND["hermitage"])
    # An unjudged cell's words are what happened (see `happenings`): only these two are legend words.
    words = {cell.words.split(" (")[0] for cell in cells
             if cell.judged or cell.words in ("timed out", *SPEC_STOPS, "could not run")}
    keys = ["timed out", SETUP_FAILED, "could not run", "-"] + ([] if hermitage else ["anomaly", "prevented", "ran"])
    return lines + [LEGEND[key] for key in keys if key in words]


LEGEND = {
    MARK_AS_EXPECTED: f"{MARK_AS_EXPECTED}: PostgreSQL did what the scenario says it does at that level.",
    "unexpected": f"{MARK_DIFFERS} unexpected: PostgreSQL did something else; what differs is listed below.",
    "sqlstate": "the steps expected to fail did, and all else was as expected, but a step failed with "
                "another SQLSTATE (named first when several did).",
    "timed out": f"timed out {MARK_TIMED_OUT}: a step ran or waited longer than the step timeout "
                 "(--step-timeout); txnlab cancelled it and stopped the run, so its outcome is unknown "
                 "(against an expectation, it counts as unexpected).",
    "unjudged": "no mark: no expectation applies to that run (a .spec states none; a scenario's are for "
                "its own order of steps); the cell says which steps waited and which failed.",
    SETUP_FAILED: "setup failed: the spec's setup SQL failed (the error is in the run's timeline), so no "
                  "step ran, as isolationtester stops there.",
    "could not run": "could not run: this server lacks something the scenario needs (the reason is below).",
    "-": "-: no such run at this level, or no anomaly rule to judge it by.",
    "anomaly": "anomaly: the scenario's anomaly happened.",
    "prevented": "prevented: it did not happen; (aborted): a transaction it needed was refused; (blocked): "
                 "a session it needed had to wait; (snapshot): a read it needed saw only what its "
                 "snapshot showed; no word: nobody it needed waited or failed, and no read decided it "
                 "(the statements themselves kept it out).",
    "ran": "ran: the scenario has no anomaly rule.",
    "hermitage": "possible: the anomaly happened; prevented: it did not, and nobody it needed waited or "
                 "failed (the snapshot, or the statements themselves); blocks: it was prevented by making "
                 "a session wait; aborts: by refusing a transaction.",
}


def matrix_grid(
    reports: Sequence[RunReport], escape: Callable[[str], str] = _as_is
) -> tuple[list[str], list[list[str | MatrixCell]]]:
    """Scenario rows by level columns (a row per permutation when several ran: see `row_label`);
    each cell a MatrixCell (see `matrix_cell`; for a run no expectation applies to, what it did:
    `happenings`) or NOT_RUN. `escape` is applied to every word that comes from a scenario."""
    shown = {level_label(r) for r in reports}
    levels = [label for label in (*(level.value for level in Level), SPEC_LEVEL) if label in shown]
    by_row: dict[str, dict[str, RunReport]] = {}
    for report in reports:
        by_row.setdefault(row_label(report), {})[level_label(report)] = report
    rows: list[list[str | MatrixCell]] = []
    for name, runs in by_row.items():
        row: list[str | MatrixCell] = [escape(name)]
        for level in levels:
            run = runs.get(level)
            if run is None:
                row.append(NOT_RUN)
            elif run.verdict.unjudged is not None:
                row.append(MatrixCell(escape(happenings(run.timeline)), judged=False))
            else:
                row.append(matrix_cell(run.verdict))
        rows.append(row)
    return ["scenario", *levels], rows


def anomaly_cell(verdict: Verdict) -> str:
    """Hermitage's words: the anomaly is possible, or prevented (by blocking or by aborting)."""
    if verdict.anomaly_observed is None:
        return "-"
    if verdict.anomaly_observed:
        return "possible"
    return {"blocked": "blocks", "aborted": "aborts"}.get(verdict.how or "", "prevented")


def anomaly_grid(
    reports: Sequence[RunReport], escape: Callable[[str], str] = _as_is
) -> tuple[list[str], list[list[str | MatrixCell]]]:
    """Levels as rows, anomalies as columns, as in Hermitage's table, derived from the runs;
    each cell a MatrixCell in Hermitage's words, marked only when it differs or timed out.
    `escape` is applied to the anomaly names, which come from the scenarios."""
    anomalies = list(dict.fromkeys(r.verdict.anomaly or r.scenario.name for r in reports))
    cells = {(r.verdict.level, r.verdict.anomaly or r.scenario.name): r.verdict for r in reports}
    rows: list[list[str | MatrixCell]] = []
    for level in Level:
        if not any(key[0] is level for key in cells):
            continue
        row: list[str | MatrixCell] = [level.value]
        for anomaly in anomalies:
            verdict = cells.get((level, anomaly))
            row.append(NOT_RUN if verdict is None else matrix_cell(verdict, anomaly_cell(verdict), mark_expected=False))
        rows.append(row)
    return ["level", *map(escape, anomalies)], rows


def plain_cell(cell: str | MatrixCell) -> str:
    """A grid cell as plain text: "prevented (aborted) ✗ expected 40001, got 40P01"."""
    if isinstance(cell, str):
        return cell
    return " ".join(part for part in (cell.words, cell.mark, cell.detail) if part)


def grid_cells(rows: Sequence[Sequence[str | MatrixCell]]) -> list[MatrixCell]:
    """The MatrixCells of a grid's rows, for its legend."""
    return [cell for row in rows for cell in row if isinstance(cell, MatrixCell)]
