"""Capturing a run's history on the server: every row version a committed transaction wrote.

Per lab (`HistoryLog`, created when the lab opens): a schema of its own, `txnlab_history_<token>`,
holding a log table, a sequence, the trigger function that writes the log and the function
that installs the triggers. Per run, right after the setup SQL (on the schema builder's
connection, ahead of the run, see runner/schemas.py): `install` puts an AFTER ROW trigger named
`zzzz_txnlab_history` on every table of the run's schema (triggers of one event fire in name
order, so it fires after the scenario's own AFTER ROW triggers: it logs the row as stored),
and reads each table's columns, primary key, storage (pg_class.relfilenode) and the rows the
setup left. After the run, `collect` takes the run's rows out of the log and reads the tables
again: a table whose relfilenode changed was truncated (TRUNCATE gives a table new storage;
docs, "TRUNCATE"), or rewritten (VACUUM FULL, CLUSTER, an ALTER TABLE that rewrites), which the
history says as a gap without naming the step (no AFTER TRUNCATE trigger: it cost each run a
second trigger per table, for a fact the catalogue keeps anyway). A TRUNCATE rolled back leaves
the relfilenode as it was, as it leaves the rows.

Why this does not change what the scenario's transactions do:
- the trigger function only inserts into the log (no EXCEPTION block, so no subtransaction; no
  read of any table, so no row lock and, under SERIALIZABLE, no SIRead lock: PostgreSQL's SSI
  takes SIRead locks on what a transaction reads, and an insert into a table nobody reads
  conflicts with no one; src/backend/storage/lmgr/README-SSI, and the docs' "Serializable
  Isolation Level");
- the log has no index or constraint, so its inserts never wait; its locks (RowExclusiveLock on
  the log and its sequence) are outside the run's schema, which is all the lock views show
  (runner/observe.py);
- it is SECURITY DEFINER (runs as the lab's user), so it works for a session that SET ROLE to a
  role with no rights, and SET search_path = pg_catalog, pg_temp, so no object of the run's
  schema or the session's search path can stand in for the ones it uses;
- nothing is sent on a session's connection: the log is read on the admin connection.
The log is transactional: what a transaction (or a savepoint) rolled back is not in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import psycopg2
import psycopg2.extensions

from txnlab.history.model import HistoryCapture, LoggedWrite, Row, TableInfo
from txnlab.history.predicates import predicate_tests
from txnlab.timeline import Event

PREFIX = "txnlab_history_"
TRIGGER = "zzzz_txnlab_history"

# The per-lab objects; {h} is the history schema (a trusted name made by txnlab). The log is
# UNLOGGED (no WAL: it lives as long as the scratch database and is read at once), so a write
# costs little more than it did. The functions are plpgsql, whose plans are cached per session.
# A schema's tables are found through pg_depend's index on the schema rather than by scanning
# pg_class, which grows with every run's schema (they go with the scratch database); partitions
# are left out (their parent's row trigger is cloned onto them).
# A table's storage: its relfilenode, or a partitioned table's partitions' (each can be truncated
# alone; pg_partition_tree lists a partitioned table and its partitions, nothing for a plain one).
STORAGE = ("CASE WHEN c.relkind = 'p' THEN (SELECT string_agg(k.relfilenode::text, ',' ORDER BY k.oid) "
           "FROM pg_partition_tree(c.oid) p JOIN pg_class k ON k.oid = p.relid) ELSE c.relfilenode::text END")
LOG_SQL = """
CREATE SCHEMA {h};
CREATE SEQUENCE {h}.seq;
CREATE UNLOGGED TABLE {h}.log (
    seq bigint NOT NULL, pid integer NOT NULL, xid text NOT NULL, run name NOT NULL, tbl name NOT NULL,
    op text NOT NULL, old text, new text, stmt timestamptz NOT NULL, query text
);
CREATE FUNCTION {h}.record() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp {text_settings} AS $$
BEGIN
    INSERT INTO {h}.log VALUES (nextval('{h}.seq'), pg_backend_pid(), pg_current_xact_id()::text,
        TG_TABLE_SCHEMA, TG_ARGV[0], TG_OP, OLD::text, NEW::text, statement_timestamp(), current_query());
    RETURN NULL;
END $$;
CREATE FUNCTION {h}.install(run name)
RETURNS TABLE (tbl name, reloid oid, storage text, columns text[], attnums integer[], key text[], rows text[])
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan {text_settings} AS $$
BEGIN
    FOR tbl, reloid, storage, columns, attnums, key IN
        SELECT c.relname, c.oid, {storage},
               ARRAY(SELECT a.attname::text FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
               ARRAY(SELECT a.attnum::integer FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
               ARRAY(SELECT a.attname::text
                       FROM pg_index x, unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n), pg_attribute a
                      WHERE x.indrelid = c.oid AND x.indisprimary AND a.attrelid = c.oid AND a.attnum = k.attnum
                      ORDER BY k.n)
          FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
         WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = run::regnamespace AND d.refobjsubid = 0
           AND d.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY c.relname
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I.%I '
                       'FOR EACH ROW EXECUTE FUNCTION {h}.record(%L)', '{trigger}', run, tbl, tbl);
        rows := NULL;
        IF key <> '{{}}' THEN
            EXECUTE format('SELECT coalesce(array_agg(ROW(t.*)::text), ''{{}}'') FROM %I.%I t', run, tbl) INTO rows;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
CREATE FUNCTION {h}.collect(run name)
RETURNS TABLE (seq bigint, pid integer, xid text, tbl name, op text, old text, new text, stmt double precision,
               query text, storage text, columns text[])
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    schema oid := run::regnamespace;
BEGIN
    RETURN QUERY DELETE FROM {h}.log l WHERE l.run = collect.run
        RETURNING l.seq, l.pid, l.xid, l.tbl, l.op, l.old, l.new, extract(epoch FROM l.stmt)::double precision,
                  l.query, NULL::text, NULL::text[];
    RETURN QUERY SELECT NULL::bigint, NULL::integer, NULL::text, c.relname, 'TABLE', NULL::text, NULL::text,
                        NULL::double precision, NULL::text, {storage},
                        ARRAY(SELECT a.attname::text FROM pg_attribute a
                              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
        FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
        WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = schema AND d.refobjsubid = 0
          AND d.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'p') AND NOT c.relispartition;
END $$;
"""

# The settings a value's text depends on (history/settings.py), pinned on the functions that
# print rows (the trigger's OLD::text and NEW::text, install's setup rows) at the values the
# lab's connection has when it creates them: the values every session starts with (a session
# begins with RESET ALL). So the log's text is what a session that changed none of them
# prints, whatever the writer's session or the setup SQL SET. lc_monetary is left out (setting
# it loads a locale per row written); a money column read after a session changed it is left
# out of matching by the reads.
TEXT_SETTINGS = " ".join(f"SET {name} FROM CURRENT" for name in
                         ("DateStyle", "IntervalStyle", "TimeZone", "extra_float_digits", "bytea_output"))
INSTALL_SQL = "SELECT tbl, reloid, storage, columns, attnums, key, rows FROM {h}.install(%s)"
MARK_SQL = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {h}.seq"
# The run's committed writes, taken out of the log, then the run's tables as they are after it
# (op TABLE, with their storage and columns): what a step truncated or created, and the columns a
# step added or dropped.
COLLECT_SQL = "SELECT seq, pid, xid, tbl, op, old, new, stmt, query, storage, columns FROM {h}.collect(%s)"


def parse_row(text: str, width: int) -> Row:
    """The per-column text of a composite value's text form (`OLD::text`, `t::text`), exactly as
    PostgreSQL's record output writes it (docs, "Composite Types", section "Composite Type
    Input and Output Syntax"): fields between parentheses separated by commas; an empty field
    is NULL, `""` is an empty string; inside double quotes `""` is one quote; a backslash takes
    the next character as it is. `width`: the number of columns (a table with none prints `()`).

    Raises ValueError for text that is not a composite value's."""
    if len(text) < 2 or text[0] != "(" or text[-1] != ")":
        raise ValueError(f"not a row: {text!r}")
    if width == 0:
        return ()
    values: list[str | None] = []
    i, end = 1, len(text) - 1
    while True:
        chars: list[str] = []
        quoted = in_quotes = False
        while i < end:
            ch = text[i]
            if ch == "\\" and i + 1 < end:
                chars.append(text[i + 1])
                i += 2
            elif ch == '"' and in_quotes and i + 1 < end and text[i + 1] == '"':
                chars.append('"')
                i += 2
            elif ch == '"':
                in_quotes, quoted = not in_quotes, True
                i += 1
            elif ch == "," and not in_quotes:
                break
            else:
                chars.append(ch)
                i += 1
        values.append("".join(chars) if chars or quoted else None)
        if i >= end:
            break
        i += 1  # past the comma
    if len(values) != width:
        raise ValueError(f"row {text!r} has {len(values)} fields, expected {width}")
    return tuple(values)


@dataclass(frozen=True)
class Installed:
    """What `install` learnt about a run's tables right after its setup SQL; `storage`: each
    table's relfilenodes then, its partitions' included (see STORAGE; a TRUNCATE changes them)."""

    schema: str
    tables: tuple[TableInfo, ...]
    initial: tuple[tuple[str, Row], ...]
    gaps: tuple[str, ...]
    storage: tuple[tuple[str, str], ...]


class HistoryLog:
    """The per-lab log and trigger function (see the module docstring); `token` makes its
    schema's name unique among the labs sharing a database."""

    def __init__(self, conn: psycopg2.extensions.connection, token: str) -> None:
        self.schema = f"{PREFIX}{token}"
        with conn.cursor() as cur:
            cur.execute(LOG_SQL.format(h=self.schema, trigger=TRIGGER, storage=STORAGE, text_settings=TEXT_SETTINGS))

    def install(self, conn: psycopg2.extensions.connection, run_schema: str) -> Installed:
        """Put the history triggers on every table of `run_schema` and read its tables and the
        rows its setup left (one round trip). When the triggers cannot be put on (a table the
        lab's user does not own, say), the run's history is that one gap, never an error."""
        tables, initial, gaps, storage = [], [], [], []
        try:
            with conn.cursor() as cur:
                cur.execute(INSTALL_SQL.format(h=self.schema), [run_schema])
                results = cur.fetchall()
        except psycopg2.Error as exc:
            if conn.closed:
                raise
            problem = (exc.diag.message_primary if exc.diag else None) or str(exc).strip()
            return Installed(run_schema, (), (), (f"the history could not be recorded: {problem}",), ())
        for name, oid, files, columns, attnums, key, rows in results:
            table = TableInfo(name=name, oid=oid, columns=tuple(columns), attnums=tuple(attnums), key_columns=tuple(key))
            tables.append(table)
            storage.append((name, files))
            if not table.tracked:
                gaps.append(f"{name} has no primary key: its rows are not objects, so its writes give no edges")
            initial.extend((name, parse_row(row, len(columns))) for row in sorted(rows or ()))
        return Installed(run_schema, tuple(tables), tuple(initial), tuple(gaps), tuple(storage))

    def mark(self, conn: psycopg2.extensions.connection) -> int:
        """The log's last sequence number so far (0 before any): writes up to it came before the run."""
        with conn.cursor() as cur:
            cur.execute(MARK_SQL.format(h=self.schema))
            return int(cur.fetchone()[0])

    def collect(
        self, conn: psycopg2.extensions.connection, installed: Installed, session_pids: Sequence[tuple[str, int]],
        events: Sequence[Event], after: int = 0,
    ) -> HistoryCapture:
        """Take the run's committed writes out of the log (on the admin connection, once the
        sessions' last steps are done) and make the run's HistoryCapture, with the reads by
        condition among the run's `events` re-evaluated (history/predicates.py). Writes with a
        sequence number up to `after` (the sessions' own setup SQL, see `mark`) came before the
        first step: they are part of the state the run starts from."""
        with conn.cursor() as cur:
            cur.execute(COLLECT_SQL.format(h=self.schema), [installed.schema])
            results = cur.fetchall()
        logged = sorted(row[:-2] for row in results if row[4] != "TABLE")
        now = {r[3]: (r[-2], r[-1]) for r in results if r[4] == "TABLE"}
        gaps = [*installed.gaps, *_schema_changes(installed, now)]
        by_name = {t.name: t for t in installed.tables}
        writes: list[LoggedWrite] = []
        initial = list(installed.initial)
        statements: dict[tuple[int, float, str | None], int] = {}
        for seq, pid, xid, table, op, old, new, stmt, query in logged:
            info = by_name.get(table)
            if info is None:
                continue
            try:
                before = parse_row(old, len(info.columns)) if old is not None else None
                after_row = parse_row(new, len(info.columns)) if new is not None else None
            except ValueError:
                continue  # the table's columns changed mid-run: said by _schema_changes
            if seq <= after:  # a session's setup SQL: part of the state the first step found
                if info.tracked:
                    initial = [r for r in initial if r != (table, before)] + ([(table, after_row)] if after_row else [])
                continue
            statement = statements.setdefault((pid, stmt, query), len(statements) + 1)
            writes.append(LoggedWrite(seq=seq, pid=pid, xid=xid, table=table, operation=op, before=before,
                                      after=after_row, statement=statement, query=query or ""))
        capture = HistoryCapture(
            tables=installed.tables, initial=tuple(initial), writes=tuple(writes), session_pids=tuple(session_pids),
        )
        tests, unevaluated = predicate_tests(conn, installed.schema, capture, events)
        return replace(capture, predicates=tests, gaps=tuple(dict.fromkeys([*gaps, *unevaluated])))


def _schema_changes(installed: Installed, now: dict[str, tuple[str, list[str]]]) -> list[str]:
    """Gaps for what the run's steps did to its tables (`now`: each table's storage and
    columns after the run): a table created (its writes are not recorded), a column added or
    dropped (rows logged after it no longer fit the table), new storage (a TRUNCATE: which step
    did it is not known, only that the rows it removed were removed by no logged write)."""
    gaps = []
    for name in sorted(set(now) - {t.name for t in installed.tables}):
        gaps.append(f"{name} was created during the run: its writes are not recorded")
    for table in installed.tables:
        if table.name in now and tuple(now[table.name][1]) != table.columns:
            gaps.append(f"{table.name}'s columns changed during the run: its writes after the change are not recorded")
    for name, storage in installed.storage:
        if name in now and now[name][0] != storage:
            gaps.append(f"{name} was truncated (or rewritten) during the run: "
                        "the rows a TRUNCATE removed have no later versions")
    return gaps
