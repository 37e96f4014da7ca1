"""What a statement's text says about snapshots, isolation levels and savepoints, as
PostgreSQL's own parser (pglast) reads it -- never by regular expression.

Source of facts: PostgreSQL's src/backend/tcop/pquery.c, PlannedStmtRequiresSnapshot: every
statement takes a snapshot except the utility statements it lists (transaction control,
LOCK, SET/RESET, SHOW, SET CONSTRAINTS, FETCH, LISTEN, NOTIFY, UNLISTEN, CHECKPOINT); and the
grammar of BEGIN/START TRANSACTION, SET TRANSACTION, SET SESSION CHARACTERISTICS AS
TRANSACTION and the default_transaction_isolation setting.
"""

from __future__ import annotations

from functools import lru_cache

import pglast
from pglast import ast
from pglast.enums.parsenodes import TransactionStmtKind, VariableSetKind

from txnlab.levels import Level

# PlannedStmtRequiresSnapshot's list: the statements that take no snapshot.
NO_SNAPSHOT = (ast.TransactionStmt, ast.LockStmt, ast.VariableSetStmt, ast.VariableShowStmt, ast.ConstraintsSetStmt,
               ast.FetchStmt, ast.ListenStmt, ast.NotifyStmt, ast.UnlistenStmt, ast.CheckPointStmt)
BEGINS = (TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START)
SAVEPOINTS = {TransactionStmtKind.TRANS_STMT_SAVEPOINT: "SAVEPOINT", TransactionStmtKind.TRANS_STMT_RELEASE: "RELEASE",
              TransactionStmtKind.TRANS_STMT_ROLLBACK_TO: "ROLLBACK TO"}
UNSET = "unset"  # default_level's answer for RESET / SET ... TO DEFAULT: back to the level txnlab configured


@lru_cache(maxsize=4096)
def parsed(sql: str) -> tuple[ast.Node, ...] | None:
    """The statements of one step's text, None when PostgreSQL's grammar rejects it (or it
    is not SQL: a Python step's description)."""
    try:
        return tuple(raw.stmt for raw in pglast.parse_sql(sql))
    except pglast.parser.ParseError:
        return None


def takes_snapshot(sql: str) -> bool:
    """Whether running the text takes a snapshot (PlannedStmtRequiresSnapshot); text the
    parser rejects is assumed to (as txnlab always assumed)."""
    statements = parsed(sql)
    return statements is None or any(not isinstance(s, NO_SNAPSHOT) for s in statements)


def begins(sql: str) -> bool:
    """Whether the text is BEGIN or START TRANSACTION."""
    statements = parsed(sql) or ()
    return any(isinstance(s, ast.TransactionStmt) and s.kind in BEGINS for s in statements)


def transaction_level(sql: str) -> Level | None:
    """The level BEGIN/START TRANSACTION ... ISOLATION LEVEL or SET TRANSACTION ISOLATION
    LEVEL gives the current transaction, if the text says one."""
    for statement in parsed(sql) or ():
        if isinstance(statement, ast.TransactionStmt) and statement.kind in BEGINS:
            options = statement.options
        elif isinstance(statement, ast.VariableSetStmt) and statement.name == "TRANSACTION":
            options = statement.args
        else:
            continue
        level = _isolation(options)
        if level is not None:
            return level
    return None


def default_level(sql: str) -> Level | str | None:
    """What the text does to the session's default level: the Level that SET
    default_transaction_isolation or SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL
    sets, UNSET for RESET (ALL) or SET ... TO DEFAULT, None when it leaves it alone (SET LOCAL
    too: it ends with the transaction)."""
    change: Level | str | None = None
    for statement in parsed(sql) or ():
        if not isinstance(statement, ast.VariableSetStmt) or statement.is_local:
            continue
        if statement.kind == VariableSetKind.VAR_RESET_ALL:
            change = UNSET
        elif statement.name == "SESSION CHARACTERISTICS":
            change = _isolation(statement.args) or change
        elif statement.name == "default_transaction_isolation":
            if statement.kind in (VariableSetKind.VAR_RESET, VariableSetKind.VAR_SET_DEFAULT):
                change = UNSET
            elif statement.kind == VariableSetKind.VAR_SET_VALUE:
                change = _level(statement.args[0]) or change
    return change


def session_level(setup: tuple[str, ...], autocommit: bool, pinned: Level | None) -> Level | None:
    """The level an explicit BEGIN of a session starts with after its setup SQL: the default
    the setup's SET sets when the session is autocommit (txnlab configured the pinned level
    first, so the setup's wins); else the pinned level (psycopg2 begins every transaction of
    a non-autocommit session with BEGIN ISOLATION LEVEL itself)."""
    level = pinned
    for sql in setup if autocommit else ():
        change = default_level(sql)
        level = pinned if change == UNSET else change or level
    return level


def savepoint(sql: str) -> tuple[str | None, str | None]:
    """("SAVEPOINT" | "RELEASE" | "ROLLBACK TO", name) when the text is one such statement."""
    statements = parsed(sql)
    if not statements or len(statements) != 1 or not isinstance(statements[0], ast.TransactionStmt):
        return None, None
    return SAVEPOINTS.get(statements[0].kind), statements[0].savepoint_name


def _isolation(options: tuple[ast.Node, ...] | None) -> Level | None:
    for option in options or ():
        if isinstance(option, ast.DefElem) and option.defname == "transaction_isolation":
            return _level(option.arg)
    return None


def _level(value: ast.Node) -> Level | None:
    """The Level an A_Const names ('repeatable read', serializable), None for others."""
    text = getattr(getattr(value, "val", None), "sval", None)
    try:
        return Level.parse(text) if text else None
    except ValueError:
        return None
