"""What every kind of session sends to start a run from a session as fresh as a new one.

Connections are reused from run to run (opening one costs about 3 ms), so each run's
sessions are first reset with the equivalent of DISCARD ALL, whatever driver they speak through.
"""

from __future__ import annotations

from txnlab.levels import Level
from txnlab.scenario.model import SessionSpec

# DISCARD ALL, spelled out so that it can share one round trip with the run's settings
# (DISCARD ALL itself refuses to run in the implicit transaction of a multi-statement query).
FRESH_SESSION_SQL = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES; "
)


def characteristics_sql(level: Level, spec: SessionSpec) -> str:
    """Session defaults for an autocommit session, so its explicit BEGIN gets the run's level."""
    parts = [f"ISOLATION LEVEL {level.sql}"]
    if spec.read_only is not None:
        parts.append("READ ONLY" if spec.read_only else "READ WRITE")
    if spec.deferrable is not None:
        parts.append("DEFERRABLE" if spec.deferrable else "NOT DEFERRABLE")
    return "SET SESSION CHARACTERISTICS AS TRANSACTION " + ", ".join(parts)
