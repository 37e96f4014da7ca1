"""What PostgreSQL's isolationtester prints, from timelines: `txnlab run X.spec --format isolationtester`.

The text is isolationtester's (src/test/isolation/isolationtester.c, PostgreSQL 18), as
pg_isolation_regress collects it, stderr and stdout in one file: "unused step name" lines
(stderr, before anything else), "Parsed test spec with N sessions", then per permutation
"starting permutation:", the result sets of setup blocks, the step lines with
"<waiting ...>" and "<... completed>", result sets as libpq's PQprint prints them (fields
separated by `|`, header, aligned), errors as "SEVERITY:  primary message", notices as
"SESSION: NOTICE:  ...", NOTIFY lines, "setup failed:" (which ends the output) and
"teardown failed:" lines, libpq's words when the server closed a session's connection, and
"failed to send query for step NAME:" (which ends the output) for a step sent to it later.
It never touches the database: everything comes from the timeline (see
runner/isolationtester.py, which records it in this order).

Only a `.spec` is printed so: `run --format isolationtester` refuses a YAML or Python scenario,
which nothing parsed as a spec and whose level this output could not name.
"""

from __future__ import annotations

from collections.abc import Sequence

from txnlab.scenario.model import Scenario
from txnlab.timeline import ErrorInfo, Event, Outcome, ResultSet, Timeline

NUMERIC_CHARACTERS = frozenset("0123456789.Ee -")


def looks_numeric(value: str) -> bool:
    """PQprint's test for right-aligning a column (libpq, fe-print.c do_field): every
    character a digit, '.', 'E', 'e', ' ' or '-', not starting with 'E'/'e', ending with a
    digit. A column is right-aligned when all its non-empty values pass."""
    return set(value) <= NUMERIC_CHARACTERS and value[0] not in "Ee" and value[-1].isdigit() and value[-1].isascii()


def _pad(text: str, width: int, right: bool) -> str:
    """printf's %-*s / %*s: padded to `width` bytes (libpq counts bytes, not characters)."""
    fill = " " * max(0, width - len(text.encode()))
    return fill + text if right else text + fill


def pqprint(result: ResultSet) -> str:
    """A result set as libpq's PQprint prints it with isolationtester's options (header,
    align, fieldSep "|"); nothing for a result without columns."""
    if not result.columns:
        return ""
    rows = [["" if value is None else value for value in row] for row in result.rows or ()]
    widths = [max([len(name.encode()), *(len(row[j].encode()) for row in rows)]) for j, name in enumerate(result.columns)]
    right = [all(looks_numeric(row[j]) for row in rows if row[j]) for j in range(len(widths))]
    lines = ["|".join(_pad(name, w, r) for name, w, r in zip(result.columns, widths, right, strict=True))]
    lines.append("+".join("-" * w for w in widths))
    lines += ["|".join(_pad(v, w, r) for v, w, r in zip(row, widths, right, strict=True)) for row in rows]
    count = len(rows)
    lines.append(f"({count} row{'' if count == 1 else 's'})")
    return "\n".join(lines) + "\n\n"


def error_text(error: ErrorInfo) -> str:
    """A step's error line: "SEVERITY:  primary message", or libpq's whole message when the
    error came from libpq itself (isolationtester prints it with an extra newline)."""
    if error.libpq_message is not None and error.severity is None:
        return f"{error.libpq_message}\n"
    return f"{error.severity or 'ERROR'}:  {error.message}\n"


def _notices(session: str, notices: Sequence[str]) -> str:
    """isolationtester's notice processor: each notice prefixed with its session's name."""
    return "".join(f"{session}: {notice}\n" for notice in notices)


def _results(event: Event) -> str:
    """Each result set of the event, after the notices libpq read just before it."""
    return "".join(_notices(event.session, r.notices) + pqprint(r) for r in event.result_sets())


def _step(event: Event) -> str:
    """One step event: its notices, then its line, results, error and notifications."""
    text = _notices(event.session, event.notices)
    if event.outcome is Outcome.NOTICE or (event.outcome is Outcome.BLOCKED and event.wait_changed):
        return text
    if event.outcome is Outcome.BLOCKED:
        return text + f"step {event.step}: {event.sql} <waiting ...>\n"
    if event.outcome is Outcome.TIMEOUT:
        return text + f"isolationtester: canceling step {event.step} after {int(event.ended - event.started)} seconds\n"
    if event.outcome in (Outcome.SKIPPED, Outcome.ENDED):
        if event.error is None or event.error.libpq_message is None:  # not a spec run's: nothing printed
            return text
        if event.outcome is Outcome.SKIPPED:  # libpq refused to send it: the session's connection is gone
            return text + f"failed to send query for step {event.step}: {error_text(event.error)}"
        return text + error_text(event.error)  # libpq's words after the server's FATAL: it closed the connection
    text += f"step {event.step}: <... completed>\n" if event.after_wait else f"step {event.step}: {event.sql}\n"
    text += _results(event)
    if event.error is not None:
        text += error_text(event.error)
    for notification in event.notifications:
        text += (f'{event.session}: NOTIFY "{notification.channel}" with payload "{notification.payload}" '
                 f"from {notification.sender}\n")
    return text


def _block(event: Event, setup: bool) -> tuple[str, bool]:
    """A setup or teardown block's output, and whether it ends the spec (a failed setup)."""
    if event.outcome is not Outcome.ERROR or event.error is None:
        return _notices(event.session, event.notices) + _results(event), False
    message = event.error.libpq_message or f"ERROR:  {event.error.message}\n"
    verb = "setup" if setup else "teardown"
    where = f"{verb} of session {event.session}" if event.session else verb
    return _notices(event.session, event.notices) + f"{where} failed: {message}", setup


def unused_steps(scenario: Scenario) -> list[str]:
    """Steps no permutation names, in isolationtester's order (strcmp of the names)."""
    used = {name for permutation in scenario.permutations for name in permutation}
    return sorted((name for name in scenario.steps if name not in used), key=lambda name: name.encode())


def render_isolationtester(scenario: Scenario, timelines: Sequence[Timeline]) -> str:
    """isolationtester's whole output for these timelines (one per permutation, in order)."""
    parts = [f"unused step name: {name}\n" for name in unused_steps(scenario)]
    parts.append(f"Parsed test spec with {len(scenario.sessions)} sessions\n")
    for timeline in timelines:
        parts.append("\nstarting permutation:" + "".join(f" {name}" for name in timeline.permutation) + "\n")
        for event in timeline.setup:
            text, ends = _block(event, setup=True)
            parts.append(text)
            if ends:
                return "".join(parts)
        parts += [_step(event) for event in timeline.events]
        parts += [_block(event, setup=False)[0] for event in timeline.teardown]
    return "".join(parts)
