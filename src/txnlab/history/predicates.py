"""Reads by condition: which row versions satisfy the WHERE clause of a step's SELECT,
UPDATE or DELETE.

A step whose SQL is one plain SELECT from one table of the run's schema (an alias allowed;
no join, set operation, CTE, subquery, LIMIT/OFFSET; FOR UPDATE/SHARE allowed) read every row
its WHERE clause selects, not only the rows it returned: a write that makes a version enter or
leave that set is a predicate anti-dependency (Adya's thesis, section 3.1.4, "predicate
read-dependencies"). So did a step whose SQL is one UPDATE or DELETE of one such table (no
FROM or USING, no CTE, no WHERE CURRENT OF; RETURNING allowed): it evaluated its WHERE clause
on every row to choose the rows it wrote (history/dml.py derives which version of each it saw).
pglast (PostgreSQL's own parser, libpg_query) finds such statements and deparses their WHERE
clause; after the run the server evaluates each clause against every version of the table the
history holds (the setup's rows, and each logged write's before and after row), in one query.
The versions are rebuilt by column name as the table's row type under the statement's alias
(jsonb_populate_recordset): a column a step added after the setup is NULL in the versions
logged in the setup's shape (it did not exist then), where typing their text form as the
table's row now failed ("malformed record literal").

A clause that calls a function that is not immutable (now(), random(), current_setting())
or names a session value (CURRENT_USER, CURRENT_DATE) could give another answer after the
run, so it is not re-evaluated; one the server fails to evaluate is a gap, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import psycopg2
import psycopg2.extensions
from pglast import ast, parse_sql
from pglast.enums import LockClauseStrength, LockWaitPolicy, SetOperation
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import Visitor

from txnlab.history.model import HistoryCapture, Key, PredicateTest, Row
from txnlab.timeline import Event, Outcome

# Nodes whose value is not the row's alone: a subquery, a session value, a parameter, a cursor.
UNREPEATABLE = (ast.SubLink, ast.SQLValueFunction, ast.ParamRef, ast.RangeSubselect, ast.CurrentOfExpr)
LOCKING = {
    LockClauseStrength.LCS_FORKEYSHARE: "FOR KEY SHARE", LockClauseStrength.LCS_FORSHARE: "FOR SHARE",
    LockClauseStrength.LCS_FORNOKEYUPDATE: "FOR NO KEY UPDATE", LockClauseStrength.LCS_FORUPDATE: "FOR UPDATE",
}
NOT_IMMUTABLE_SQL = "SELECT DISTINCT proname::text FROM pg_proc WHERE proname = ANY(%s) AND provolatile <> 'i'"


@dataclass(frozen=True)
class Candidate:
    """A statement's read by condition: its command (SELECT, UPDATE or DELETE), its table,
    the name its clause uses for the table (the alias, else the table's name), the WHERE clause
    as SQL ("TRUE" without one), the names of the functions the clause calls, and a SELECT's
    row lock ("FOR UPDATE"...; None without one, or with SKIP LOCKED)."""

    command: str
    table: str
    alias: str
    predicate: str
    functions: frozenset[str]
    locking: str | None = None

    @property
    def locks_rows(self) -> bool:
        """It locks every row it chooses and waits for a row another transaction holds: at
        READ COMMITTED it then re-checks the row's latest version, at REPEATABLE READ and
        SERIALIZABLE it fails if the row changed since its snapshot (docs 13.2.1, 13.2.2;
        history/dml.py)."""
        return self.command != "SELECT" or self.locking is not None


class _Nodes(Visitor):  # type: ignore[misc]
    """Every node of a parse tree, in visiting order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[ast.Node] = []

    def visit(self, ancestors: object, node: ast.Node) -> None:
        self.found.append(node)


def _nodes(tree: ast.Node | None) -> list[ast.Node]:
    if tree is None:
        return []
    walker = _Nodes()
    walker(tree)
    return walker.found


@lru_cache(maxsize=4096)
def predicate_read(sql: str, tables: frozenset[str]) -> Candidate | None:
    """The read by condition of `sql`, if it is one plain SELECT from, or one UPDATE or DELETE
    of, one of `tables` (the run's tables, unqualified, as the steps name them); None otherwise
    (see module docstring). Cached: a matrix sends the same statements at every level (parsing
    one costs ~0.2 ms)."""
    try:
        statements = parse_sql(sql)
    except ParseError:
        return None
    if len(statements) != 1:
        return None
    statement = statements[0].stmt
    if isinstance(statement, ast.SelectStmt):
        source = _select_source(statement)
    elif isinstance(statement, (ast.UpdateStmt, ast.DeleteStmt)):
        joined = statement.fromClause if isinstance(statement, ast.UpdateStmt) else statement.usingClause
        source = statement.relation if not (joined or statement.withClause) else None
    else:
        return None
    if not isinstance(source, ast.RangeVar) or source.schemaname or source.catalogname or source.relname not in tables:
        return None
    if any(isinstance(node, UNREPEATABLE) for node in _nodes(statement)):
        return None
    where = statement.whereClause
    functions = frozenset(
        node.funcname[-1].sval for node in _nodes(where) if isinstance(node, ast.FuncCall)
    )
    alias = source.alias.aliasname if source.alias else source.relname
    command = {ast.SelectStmt: "SELECT", ast.UpdateStmt: "UPDATE", ast.DeleteStmt: "DELETE"}[type(statement)]
    locking = _locking(statement) if isinstance(statement, ast.SelectStmt) else None
    predicate = RawStream()(where) if where is not None else "TRUE"
    return Candidate(command, source.relname, alias, predicate, functions, locking)


def _select_source(statement: ast.SelectStmt) -> ast.Node | None:
    """The one relation a plain SELECT reads (see module docstring), else None."""
    if (statement.op != SetOperation.SETOP_NONE or statement.withClause or statement.intoClause
            or statement.limitCount or statement.limitOffset or not statement.fromClause
            or len(statement.fromClause) != 1):
        return None
    return statement.fromClause[0]


def _locking(statement: ast.SelectStmt) -> str | None:
    """A SELECT's row lock, when it waits for rows others hold (not SKIP LOCKED)."""
    clauses = statement.lockingClause or ()
    if not clauses or any(c.waitPolicy == LockWaitPolicy.LockWaitSkip for c in clauses):
        return None
    return LOCKING[clauses[0].strength]


def rows_json(columns: Sequence[str], rows: Sequence[Row]) -> str:
    """Rows as a JSON array of objects, one member per column (NULL: null), as
    jsonb_populate_recordset reads them back into the table's row type."""
    return json.dumps([dict(zip(columns, row)) for row in rows])


def predicate_tests(
    conn: psycopg2.extensions.connection, schema: str, capture: HistoryCapture, events: Sequence[Event],
) -> tuple[tuple[PredicateTest, ...], tuple[str, ...]]:
    """Evaluate the WHERE clause of every read by condition among `events` (the run's steps)
    against every version of its table in `capture`, on the server (`conn`, after the run; one
    query, or one per clause when one of them fails). Returns the tests and the gaps (a clause
    the server could not evaluate, with its reason)."""
    tables = frozenset(t.name for t in capture.tables)  # keyless too: a predicate needs no row identity
    reads = [
        (event, candidate) for event in events
        if event.outcome is Outcome.OK and event.session
        and (candidate := predicate_read(event.sql, tables)) is not None
        and (candidate.command != "SELECT" or event.columns is not None)
    ]
    if not reads:
        return (), ()
    versions = _versions(capture)
    unrepeatable = _not_immutable(conn, {f for _, c in reads for f in c.functions})
    gaps, evaluable = [], []
    for event, candidate in reads:
        if candidate.functions & unrepeatable:
            gaps.append(f"step {event.step}'s WHERE clause calls a function that is not immutable: not re-evaluated")
        else:
            evaluable.append((event, candidate))
    columns = {t.name: t.columns for t in capture.tables}
    queries = [_query(conn, schema, candidate, columns[candidate.table], versions[candidate.table])
               for _, candidate in evaluable]
    try:
        answers = _run(conn, queries)
    except psycopg2.Error:
        if conn.closed:
            raise
        answers = []
        for (event, _), query in zip(evaluable, queries):
            try:
                answers += _run(conn, [query])
            except psycopg2.Error as exc:
                if conn.closed:
                    raise
                answers.append(None)
                reason = (exc.diag.message_primary if exc.diag else None) or str(exc).strip()
                gaps.append(f"step {event.step}'s WHERE clause could not be re-evaluated: {reason}")
    tests = [
        _test(event, candidate, versions[candidate.table], answer)
        for (event, candidate), answer in zip(evaluable, answers) if answer is not None
    ]
    return tuple(tests), tuple(gaps)


# One table's versions, in the order they are sent: (key of a setup row | seq of a write, is the write's after row, row).
Versions = list[tuple[Key | int, bool, Row]]


def _versions(capture: HistoryCapture) -> dict[str, Versions]:
    found: dict[str, Versions] = {t.name: [] for t in capture.tables}
    for name, row in capture.initial:
        info = capture.table(name)
        if info is not None and name in found:
            found[name].append((info.key_of(row), False, row))
    for write in capture.writes:
        if write.table in found:
            found[write.table] += [(write.seq, side, row) for side, row in ((False, write.before), (True, write.after))
                                   if row is not None]
    return found


def _not_immutable(conn: psycopg2.extensions.connection, functions: set[str]) -> frozenset[str]:
    """The names among `functions` that some function not marked immutable has (pg_proc)."""
    if not functions:
        return frozenset()
    with conn.cursor() as cur:
        cur.execute(NOT_IMMUTABLE_SQL, [sorted(functions)])
        return frozenset(name for (name,) in cur.fetchall())


def _query(conn: psycopg2.extensions.connection, schema: str, candidate: Candidate, columns: tuple[str, ...],
           versions: Versions) -> bytes:
    """One clause over one table's versions: an array of booleans, one per version, in order.
    Each version goes as a JSON object of its `columns` (the table's, as the setup left them),
    which the server types as the table's row now, column by column (docs, "JSON Functions":
    a string is fed to the column type's input function; a column missing is NULL)."""
    quote = psycopg2.extensions.quote_ident
    rows = rows_json(columns, [row for _, _, row in versions])
    predicate = candidate.predicate.replace("%", "%%")  # mogrify's placeholders are %s
    sql = (f"SELECT ARRAY(SELECT coalesce(({predicate}), false) FROM jsonb_populate_recordset("
           f"NULL::{quote(schema, conn)}.{quote(candidate.table, conn)}, %s::jsonb) AS {quote(candidate.alias, conn)})")
    with conn.cursor() as cur:
        return cur.mogrify(sql, [rows])


def _run(conn: psycopg2.extensions.connection, queries: Sequence[bytes]) -> list[list[bool]]:
    """Each query's array of booleans (one round trip for all of them)."""
    union = b" UNION ALL ".join(b"SELECT %d, (%s)" % (index, query) for index, query in enumerate(queries))
    with conn.cursor() as cur:
        cur.execute(union + b" ORDER BY 1")
        return [list(answer) for _, answer in cur.fetchall()]


def _test(event: Event, candidate: Candidate, versions: Versions, answer: list[bool]) -> PredicateTest:
    initial = frozenset(origin for (origin, _, _), yes in zip(versions, answer) if yes and not isinstance(origin, int))
    sides: dict[int, list[bool]] = {}
    for (origin, is_after, _), yes in zip(versions, answer):
        if isinstance(origin, int):
            sides.setdefault(origin, [False, False])[is_after] = yes
    return PredicateTest(
        event_seq=event.seq, table=candidate.table, predicate=candidate.predicate, initial=initial,
        writes=tuple((seq, before, after) for seq, (before, after) in sides.items()),
    )
