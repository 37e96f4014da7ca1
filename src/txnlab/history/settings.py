"""Which session settings change the text PostgreSQL sends for a value of a given type, and
which settings a statement changes -- so that a value read under settings other than the
log's is never compared as text with the log's (PostgreSQL's docs: 8.5.2 "Date/Time Output"
(DateStyle), 8.5.1.3 and 8.5.4 (TimeZone), 8.5.5 "Interval Output" (IntervalStyle), 8.1.3
"Floating-Point Types" (extra_float_digits), 8.4 "Binary Data Types" (bytea_output), 8.2
"Monetary Types" (lc_monetary)).

The history log's text and the setup rows' text are produced under the settings every
session starts with (history/capture.py pins them, all but lc_monetary, on the trigger and
install functions with SET ... FROM CURRENT; a session starts with RESET ALL). So a session's
value matches the log's text exactly unless the session changed a setting its type's text
depends on (a money value written by a session that changed lc_monetary matches nothing).
"""

from __future__ import annotations

from pglast import ast
from pglast.enums.parsenodes import VariableSetKind

from txnlab.history.statements import parsed
from txnlab.timeline import Event

# The settings each type's text output depends on (by format_type's name, without a typmod).
DEPENDS: dict[str, frozenset[str]] = {
    "timestamp with time zone": frozenset({"timezone", "datestyle"}),
    "timestamp without time zone": frozenset({"datestyle"}),
    "date": frozenset({"datestyle"}),
    "time with time zone": frozenset({"datestyle", "timezone"}),
    "time without time zone": frozenset({"datestyle"}),
    "interval": frozenset({"intervalstyle"}),
    "real": frozenset({"extra_float_digits"}),
    "double precision": frozenset({"extra_float_digits"}),
    "bytea": frozenset({"bytea_output"}),
    "money": frozenset({"lc_monetary"}),
    "tstzrange": frozenset({"timezone", "datestyle"}),
    "tsrange": frozenset({"datestyle"}),
    "daterange": frozenset({"datestyle"}),
    "tstzmultirange": frozenset({"timezone", "datestyle"}),
    "tsmultirange": frozenset({"datestyle"}),
    "datemultirange": frozenset({"datestyle"}),
}
ALL = frozenset().union(*DEPENDS.values())
# The settings under which the text of a literal in a WHERE clause is read as a value.
LITERALS = frozenset({"timezone", "datestyle", "intervalstyle"})


def depends_on(type_name: str) -> frozenset[str]:
    """The settings the text of a value of this type (format_type's spelling, e.g.
    `timestamp(3) with time zone`, `interval[]`) depends on; none for int, text, numeric..."""
    name = type_name.removesuffix("[]")
    if "(" in name:  # a typmod: timestamp(3) with time zone, interval(2), time(0) without time zone
        head, _, rest = name.partition("(")
        name = (head.strip() + " " + rest.partition(")")[2].strip()).strip()
    if name.startswith("interval"):
        return DEPENDS["interval"]
    return DEPENDS.get(name, frozenset())


def set_by(sql: str) -> frozenset[str]:
    """The settings (lower case) the text changes, SET LOCAL included: SET, RESET (ALL),
    SET TIME ZONE, or a call of set_config (which could change any). Text the parser rejects
    changes none (it did not run)."""
    statements = parsed(sql)
    if statements is None:
        return frozenset()
    if "set_config" in sql.lower():
        return ALL
    changed: set[str] = set()
    for statement in statements:
        if isinstance(statement, ast.VariableSetStmt):
            if statement.kind == VariableSetKind.VAR_RESET_ALL:
                return ALL
            if statement.name:
                changed.add(statement.name.lower())
    return frozenset(changed & ALL)


class SessionSettings:
    """Which settings each session had changed by each of its statements (its setup SQL,
    then its steps up to and including the statement), and the result columns left out of
    matching because of them (one gap sentence per step and column)."""

    def __init__(self, events: list[Event], setups: dict[str, tuple[str, ...]] | None = None) -> None:
        self._by_event: dict[int, frozenset[str]] = {}
        changed = {session: frozenset().union(*map(set_by, sql)) for session, sql in (setups or {}).items()}
        for event in events:
            now = changed.get(event.session, frozenset()) | set_by(event.sql)
            changed[event.session] = now
            self._by_event[event.seq] = now
        self._left_out: dict[tuple[str, str], str] = {}

    def comparable(self, event: Event, index: int, table: str, column: str) -> bool:
        """Whether result column `index` of the event's rows can be compared as text with the
        log's: its type's text depends on no setting the session changed. Records a gap when not."""
        types = event.column_types or ()
        clash = depends_on(types[index]) & self.changed(event) if index < len(types) else frozenset()
        if clash:
            said = ", ".join(sorted(clash))
            self._left_out[(event.step, f"{table}.{column}")] = (
                f"{event.step} read {table}.{column} ({types[index]}) after session {event.session} changed {said}:"
                " its text is not the log's, so it was left out of matching the row to a version")
        return not clash

    def changed(self, event: Event) -> frozenset[str]:
        """The settings the event's session had changed by it (its setup SQL, its steps)."""
        return self._by_event.get(event.seq, frozenset())

    @property
    def gaps(self) -> tuple[str, ...]:
        return tuple(self._left_out.values())
