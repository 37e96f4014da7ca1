"""The scenario behind a test's interleaving (runner.interleave): named sessions, the data to
run on, and what must hold afterwards; its steps are the test's own calls, sent as it goes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from txnlab.errors import UsageError
from txnlab.levels import Level
from txnlab.scenario.model import Scenario, SessionSpec
from txnlab.scenario.schema import NAME


def interleaving_scenario(
    name: str, source: Path, sessions: Sequence[str], setup: str | Sequence[str] = (),
    invariants: Mapping[str, str] | None = None, final: str | Sequence[str] = (), level: Level = Level.READ_COMMITTED,
) -> Scenario:
    """A Scenario with psycopg2 sessions `sessions` and no steps of its own, runnable at `level`.

    `setup` (SQL, run in the run's fresh schema before the sessions start), `invariants`
    (name -> SQL returning one boolean, read on the committed state afterwards) and `final`
    (SQL whose rows show the final state) mean what they mean in a scenario file
    (docs/scenario-format.md). Raises UsageError (one line) for a session name that is not
    lower-case letters, digits and hyphens, repeated names, no session, or one string in
    place of the list (its characters would be the sessions)."""
    if isinstance(sessions, str):
        raise UsageError(f"sessions={sessions!r}: give a list of names, such as [{sessions!r}]")
    if not sessions:
        raise UsageError("an interleaving needs at least one session")
    for session in sessions:
        if not isinstance(session, str) or not NAME.match(session):
            raise UsageError(f"session name {session!r} must be lower-case letters, digits and hyphens, "
                             "starting with a letter or digit")
    if len(set(sessions)) != len(sessions):
        raise UsageError(f"session names repeat: {', '.join(sessions)}")
    return Scenario(
        name=name, title=name, summary="", source=source,
        sessions=tuple(SessionSpec(name=s) for s in sessions), steps={}, permutations=((),),
        setup=_statements(setup), invariants=dict(invariants or {}), final=_statements(final), levels=(level,),
        interleaving=True,
    )


def _statements(sql: str | Sequence[str]) -> tuple[str, ...]:
    return (sql,) if isinstance(sql, str) else tuple(sql)
