"""The server's names for the types of the columns a step returned, and the text of a
value as another session would print it.

psycopg2 gives each column's type as an OID (`cursor.description[i].type_code`); the
timeline keeps the name (`numeric`, `timestamp with time zone`, `integer[]`), which
decides how a value is shown and which cast `${step.column}` writes. Names come from
`format_type(oid, NULL)` (no type modifier, so a cast keeps every digit; `character`
and `bit` are cast by their internal names, see txnlab.values.cast_name), asked on a
connection of txnlab's own whose search_path is the run's schema, so a type the setup
created is named without the schema.

Dates and intervals are printed, and read, in a session's DateStyle and IntervalStyle:
`02.01.2024` is the 2nd of January in German style and the 1st of February to a session
with the default `ISO, MDY`. A value handed from one session to another whose styles
differ is therefore first re-printed in the receiving session's styles (`restyled`).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2.extensions

from txnlab.runner.drivers.psycopg2 import server_text_cursor
from txnlab.runner.execute import Styles, guarded
from txnlab.values import cast_name

NAMES_SQL = "SELECT oid::int, format_type(oid, NULL) FROM unnest(%s::oid[]) AS oid"
# The value is read in the inner query, under the styles it was printed in, then printed
# after set_config has switched to the receiving session's styles.
RESTYLE_SQL = (
    "SELECT set_config('DateStyle', %(date_style)s, false), set_config('IntervalStyle', %(interval_style)s, false), "
    "v FROM (SELECT CAST(CAST(%(text)s AS text) AS {type}) AS v OFFSET 0) AS value"
)


class TypeCatalog:
    """Type names (asked once per OID) and restyled values for one run.

    `conn` is used only from the main thread; `label` names it if it dies (ConnectionLost)."""

    def __init__(self, conn: psycopg2.extensions.connection, label: str) -> None:
        self.conn = conn
        self.label = label
        self._names: dict[int, str] = {}

    def names(self, oids: Sequence[int]) -> tuple[str, ...]:
        """The type name of each OID, in order."""
        missing = sorted(set(oids) - self._names.keys())
        if missing:
            with guarded(self.conn, self.label), self.conn.cursor() as cur:
                cur.execute(NAMES_SQL, [missing])
                self._names.update(cur.fetchall())
        return tuple(self._names[oid] for oid in oids)

    def restyled(self, text: str, type_name: str, printed_in: Styles, wanted: Styles) -> str:
        """`text`, a value of `type_name` printed under the styles `printed_in`, as the server
        prints the same value under `wanted` (each a (DateStyle, IntervalStyle) pair).
        The connection's own styles are put back afterwards."""
        with guarded(self.conn, self.label), server_text_cursor(self.conn) as cur:
            cur.execute(
                "SELECT set_config('DateStyle', %s, false), set_config('IntervalStyle', %s, false)", printed_in
            )
            try:
                query = RESTYLE_SQL.format(type=cast_name(type_name))
                cur.execute(query, {"text": text, "date_style": wanted[0], "interval_style": wanted[1]})
                return str(cur.fetchone()[2])
            finally:
                cur.execute("RESET DateStyle; RESET IntervalStyle")
