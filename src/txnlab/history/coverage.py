"""Which reads the history does not record, so that "no cycle" is never said of a history
whose reads were not all seen.

The history records a read two ways (history/reads.py): the rows a SELECT returned, by the
table column each result column came from, and a read by condition (a WHERE clause the server
re-evaluated, history/predicates.py). A statement can read a table in ways neither sees: an
aggregate (sum(bal)), a computed column, a subquery in WHERE, SET or VALUES, a CTE, INSERT ...
SELECT, UPDATE ... FROM, DELETE ... USING, a join or set operation that returned no row of the
table, a cursor (its FETCH rows are not a SELECT's), COPY ... TO, a view; and rows whose
RowDescription origins the driver did not report (no condition stands in for them: UNPLACED). pglast (PostgreSQL's
own parser) names every relation each step's statement reads and where; each tracked table
read in a way that was not recorded for that step becomes one UnrecordedRead, and so does a
step whose SQL cannot be parsed or that ran Python code. A relation that is neither a table of
the run, a CTE nor the catalogue's (pg_catalog, information_schema, unqualified pg_*) is taken
to be a view, conservatively (the capture knows only tables).

A table named more than once in one statement (a self-join, or a table read again in a
subquery) returns columns that RowDescription cannot tell apart by row (it names the table
column, not the range-table entry), so its rows are not matched to versions at all
(`repeated`; history/__init__.py drops them), and the read is unrecorded ("a self-join").

Only steps of committed transactions count: edges join committed transactions only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from pglast import ast, parse_sql
from pglast.enums import SetOperation
from pglast.parser import ParseError
from pglast.visitors import Ancestor, Visitor

from txnlab.history.model import HistoryCapture, PredicateRead, Read, UnrecordedRead
from txnlab.history.transactions import Owners
from txnlab.timeline import Event, Outcome, Timeline

# Aggregate and window functions of PostgreSQL's catalogue whose value depends on several rows
# (docs, "Aggregate Functions"); a call with `*`, DISTINCT, FILTER or OVER is one whatever its name.
AGGREGATES = frozenset({
    "count", "sum", "avg", "min", "max", "bool_and", "bool_or", "every", "array_agg", "string_agg",
    "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg", "bit_and", "bit_or", "bit_xor",
    "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "xmlagg", "range_agg",
    "range_intersect_agg", "mode", "percentile_cont", "percentile_disc", "corr", "covar_pop",
    "covar_samp", "regr_count", "regr_sum", "any_value",
})
# Where a read is recorded: "rows" when the step returned rows of the table, "rows or condition"
# also by a read by condition of it, "never" (no Read or PredicateRead can stand for it).
ROWS, ROWS_OR_CONDITION, NEVER = "rows", "rows or condition", "never"
SELF_JOIN = "a self-join: the table is named more than once in one statement, so its rows cannot be told apart"
VIEW = "through a view, or a relation the history does not track"
UNPLACED = "rows the driver did not say which table columns they came from (no RowDescription origins)"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
PYTHON_CODE = "Python code"


@dataclass(frozen=True)
class Reference:
    """One relation a statement reads: its name, how (words, for the gap), and which record
    of the history can stand for the read (ROWS, ROWS_OR_CONDITION or NEVER)."""

    relation: str
    how: str
    recorded_by: str


@lru_cache(maxsize=4096)
def references(sql: str) -> tuple[Reference, ...] | None:
    """Every relation `sql` reads (one Reference per mention, CTE names left out), in the
    order written; None when pglast cannot parse it. Cached: a matrix sends the same
    statements at every level."""
    try:
        statements = parse_sql(sql)
    except ParseError:
        return None
    found: list[Reference] = []
    for raw in statements:
        found += _Mentions(raw.stmt).found
    return tuple(found)


class _Mentions(Visitor):  # type: ignore[misc]
    """The relations one statement reads (see `references`)."""

    def __init__(self, statement: ast.Node) -> None:
        super().__init__()
        self.statement = statement
        self.found: list[Reference] = []
        self.ctes = {n.ctename for n in _all(statement, ast.CommonTableExpr)}
        if _reads(statement):
            self(statement)

    def visit_RangeVar(self, ancestors: Ancestor, node: ast.RangeVar) -> None:
        if node.schemaname in SYSTEM_SCHEMAS or (not node.schemaname and (
                node.relname in self.ctes or node.relname.startswith("pg_"))):  # a CTE, or the catalogue's
            return
        place = _place(ancestors, self.statement)
        if place is not None:
            self.found.append(Reference(node.relname, *place))


def _reads(statement: ast.Node) -> bool:
    """Whether the statement reads the relations it names (a query, a write, a cursor, COPY ...
    TO, CREATE TABLE AS, EXPLAIN ANALYZE), not only locks, truncates or defines them."""
    if isinstance(statement, ast.CopyStmt):
        return not statement.is_from
    if isinstance(statement, ast.ExplainStmt):
        return any(o.defname == "analyze" for o in statement.options or ())
    return isinstance(statement, (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt,
                                  ast.DeclareCursorStmt, ast.CreateTableAsStmt))


def _place(ancestors: Ancestor, statement: ast.Node) -> tuple[str, str] | None:
    """(how, recorded_by) for a relation at `ancestors` in `statement`; None: not a read (the
    table an INSERT writes into, or that CREATE TABLE AS or SELECT INTO creates)."""
    chain = []
    step: Ancestor | None = ancestors
    while step is not None and step.node is not None:
        chain.append((step.node, step.member))
        step = step.parent
    for node, _ in chain:  # innermost first: the nearest construct decides
        if isinstance(node, ast.IntoClause):
            return None
        if isinstance(node, ast.SubLink):
            return "a subquery", NEVER
        if isinstance(node, ast.CommonTableExpr):
            return "a CTE", NEVER
        if isinstance(node, ast.RangeSubselect):
            return "a subquery in FROM", ROWS
        if isinstance(node, ast.SelectStmt) and node.op != SetOperation.SETOP_NONE:
            return "a set operation", ROWS
        if isinstance(node, ast.JoinExpr):
            return "a join", ROWS
    kinds = {
        ast.DeclareCursorStmt: ("a cursor: its FETCH rows are not recorded", NEVER),
        ast.CopyStmt: ("COPY ... TO", NEVER),
        ast.CreateTableAsStmt: ("CREATE TABLE ... AS", NEVER),
        ast.ExplainStmt: ("EXPLAIN ANALYZE", NEVER),
        ast.MergeStmt: ("MERGE", NEVER),
        ast.InsertStmt: ("INSERT ... SELECT", NEVER),
    }
    if type(statement) in kinds:
        if isinstance(statement, ast.InsertStmt) and chain[-1][1] == "relation":
            return None
        return kinds[type(statement)]
    if isinstance(statement, (ast.UpdateStmt, ast.DeleteStmt)):
        if chain[-1][1] == "relation":
            return "its WHERE clause, which was not re-evaluated", ROWS_OR_CONDITION
        return ("UPDATE ... FROM" if isinstance(statement, ast.UpdateStmt) else "DELETE ... USING"), NEVER
    assert isinstance(statement, ast.SelectStmt)
    if len(statement.fromClause or ()) > 1:
        return "a join", ROWS
    aggregates = [f for f in _all(statement.targetList, ast.FuncCall) if _aggregate(f)]
    if statement.groupClause or statement.havingClause or any(not _counts_rows(f) for f in aggregates):
        return "an aggregate", NEVER
    if aggregates:  # count(*) depends on which rows satisfy the WHERE clause only: a read by condition
        return "count(*), whose WHERE clause was not re-evaluated", ROWS_OR_CONDITION
    if any(not isinstance(t.val, (ast.ColumnRef, ast.A_Const)) for t in statement.targetList or ()
           if isinstance(t, ast.ResTarget)):
        return "a computed column", ROWS
    return "a SELECT whose rows and condition were not recorded", ROWS_OR_CONDITION


def _aggregate(call: ast.FuncCall) -> bool:
    return bool(call.agg_star or call.agg_distinct or call.agg_filter or call.over
                or call.funcname[-1].sval in AGGREGATES)


def _counts_rows(call: ast.FuncCall) -> bool:
    """count(*) with no FILTER or OVER: its value is how many rows the WHERE clause chose."""
    return bool(call.agg_star and not call.agg_filter and not call.over and call.funcname[-1].sval == "count")


class _Collect(Visitor):  # type: ignore[misc]
    def __init__(self, kind: type | tuple[type, ...]) -> None:
        super().__init__()
        self.kind, self.found = kind, []

    def visit(self, ancestors: Ancestor, node: ast.Node) -> None:
        if isinstance(node, self.kind):
            self.found.append(node)


def _all(tree: object, kind: type | tuple[type, ...]) -> list:
    """Every node of `kind` in `tree` (a node, a tuple of nodes, or None)."""
    if tree is None:
        return []
    collect = _Collect(kind)
    for node in tree if isinstance(tree, tuple) else (tree,):
        if isinstance(node, kind):
            collect.found.append(node)
        collect(node)
    return collect.found


WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
WRITE_STATUS = ("INSERT", "UPDATE", "DELETE", "MERGE")


def tried_to_write(event: Event) -> bool:
    """Whether a step may have written a row, whatever became of it: its command status says
    a write (INSERT, UPDATE, DELETE, MERGE), or its SQL holds a write statement (one that
    failed, a data-modifying CTE), or it is SQL pglast cannot parse or Python code (unknown:
    assumed it may have)."""
    if (event.status or "").startswith(WRITE_STATUS):
        return True
    if event.status is None and event.outcome is Outcome.OK:
        return not event.driver_sent_nothing  # a Python step
    return _has_write(event.sql)


@lru_cache(maxsize=4096)
def _has_write(sql: str) -> bool:
    try:
        statements = parse_sql(sql)
    except ParseError:
        return True
    return any(_all(raw.stmt, WRITES) for raw in statements)


def repeated(timeline: Timeline, capture: HistoryCapture) -> frozenset[tuple[int, str]]:
    """(Event.seq, table) of every statement that returned columns of a table of the run it
    names more than once: they cannot be told apart by row, so none of them is a Read."""
    names = {t.oid: t.name for t in capture.tables}
    found = set()
    for event in timeline.events:
        if event.outcome is Outcome.OK and event.rows:
            returned = {names[oid] for oid, _ in event.column_origins or () if oid in names}
            counts = Counter(r.relation for r in references(event.sql) or ())
            found |= {(event.seq, name) for name in returned if counts[name] > 1}
    return frozenset(found)


def unrecorded(timeline: Timeline, capture: HistoryCapture, owners: Owners, found: tuple[Read, ...],
               by_condition: tuple[PredicateRead, ...],
               skipped: frozenset[tuple[int, str]]) -> tuple[UnrecordedRead, ...]:
    """Every read of a committed transaction's step that no Read nor PredicateRead records,
    one per (step, table) (see module docstring). `found` and `by_condition` are the history's
    reads (reads.reads, reads.predicate_reads), `skipped` the self-joins' (`repeated`)."""
    tracked = {t.name for t in capture.tables if t.tracked}
    known = {t.name for t in capture.tables}
    rows = {(r.event_seq, r.table) for r in found}
    conditions = {(p.event_seq, p.table) for p in by_condition}
    gaps: dict[tuple[str, str | None], UnrecordedRead] = {}
    for event in timeline.events:
        span = owners.of_event(event.seq)
        if span is None or span.transaction.outcome != "committed" or event.outcome is not Outcome.OK:
            continue
        for table, how in _misses(event, rows | skipped, conditions, tracked, known):
            gaps.setdefault((event.step, table), UnrecordedRead(span.id, event.step, table, how))
    return tuple(gaps.values())


def _misses(event: Event, rows: set[tuple[int, str]], conditions: set[tuple[int, str]], tracked: set[str],
            known: set[str]) -> list[tuple[str | None, str]]:
    """(table, how) of each read of one settled statement that nothing records."""
    if event.status is None:
        return [] if event.driver_sent_nothing else [(None, PYTHON_CODE)]
    mentions = references(event.sql)
    if mentions is None:
        return [(None, "its SQL, which pglast cannot parse")]
    counts = Counter(m.relation for m in mentions)
    unplaced = bool(event.rows) and event.column_origins is None  # its condition cannot stand for its rows
    misses = []
    for mention in sorted(mentions, key=lambda m: m.recorded_by != NEVER):  # a table's first words: how it is never seen
        table = mention.relation
        if table not in known:
            misses.append((table, VIEW))
        elif table not in tracked:
            continue  # its rows are not objects: the capture's gap says so
        elif counts[table] > 1:  # its rows are not matched (`repeated`), or it was read again in a subquery
            misses.append((table, SELF_JOIN if (event.seq, table) in rows else mention.how))
        elif mention.recorded_by == NEVER or not ((event.seq, table) in rows or (
                mention.recorded_by == ROWS_OR_CONDITION and not unplaced and (event.seq, table) in conditions)):
            misses.append((table, UNPLACED if unplaced and mention.recorded_by != NEVER else mention.how))
    return misses
