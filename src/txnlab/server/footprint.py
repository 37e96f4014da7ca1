"""What a run left on the server outside its scratch database, found and, on txnlab's own server, undone.

txnlab runs other people's SQL by design, so scenario steps may create roles and
databases, or change settings with ALTER SYSTEM and ALTER ROLE/DATABASE ... SET. Those
outlive the scratch database. `Footprint` reads the server-wide catalogs before the run
and again after it. "Appeared during the run" is all the catalogs can tell: they do not
say who created a role or a database. So what appeared is removed (DROP ROLE, DROP
DATABASE, ALTER SYSTEM RESET + pg_reload_conf(), ALTER ROLE/DATABASE ... RESET) only when
`undo` is set, which txnlab does for its embedded server, where nobody keeps data; on a
server the user chose, another client's new role or database must never be dropped, so
there it is only reported. What existed before and was changed or dropped is always
only reported, except, with `undo`, a dropped maintenance database, which txnlab itself
needs and recreates empty. A catalog the role may not read (pg_file_settings for a
non-superuser) is skipped. A database still in use is never dropped.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, replace

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from txnlab.server.connect import connect, first_line

SCRATCH_PATTERN = r"txnlab\_scratch\_%"

# Each catalog query returns (key..., value) rows; keys are names, value what may change.
ROLES_SQL = """
SELECT rolname, concat_ws(' ', CASE WHEN rolsuper THEN 'SUPERUSER' END, CASE WHEN rolcreatedb THEN 'CREATEDB' END,
       CASE WHEN rolcreaterole THEN 'CREATEROLE' END, CASE WHEN rolcanlogin THEN 'LOGIN' END,
       CASE WHEN rolreplication THEN 'REPLICATION' END, CASE WHEN rolbypassrls THEN 'BYPASSRLS' END,
       CASE WHEN NOT rolinherit THEN 'NOINHERIT' END, 'CONNECTION LIMIT ' || rolconnlimit,
       'VALID UNTIL ' || rolvaliduntil)
FROM pg_roles WHERE rolname !~ '^pg_'
"""
DATABASES_SQL = "SELECT datname, '' FROM pg_database WHERE datname NOT LIKE %(scratch)s"
SYSTEM_SETTINGS_SQL = "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%%postgresql.auto.conf'"
OBJECT_SETTINGS_SQL = """
SELECT coalesce(r.rolname, ''), coalesce(d.datname, ''), split_part(c.setting, '=', 1),
       substr(c.setting, strpos(c.setting, '=') + 1)
FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS c(setting)
LEFT JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole
WHERE coalesce(d.datname, '') NOT LIKE %(scratch)s
"""

CATALOGS = {  # in the order changes are undone: a database before the role that owns it
    "database": DATABASES_SQL,
    "role": ROLES_SQL,
    "setting": SYSTEM_SETTINGS_SQL,  # ALTER SYSTEM: postgresql.auto.conf; superusers (or pg_read_all_settings) only
    "role/database setting": OBJECT_SETTINGS_SQL,  # ALTER ROLE/DATABASE ... SET
}

Key = tuple[str, ...]
Snapshot = dict[str, dict[Key, str] | None]  # kind -> {key: value}; None when the role may not read it


@dataclass(frozen=True)
class ServerChange:
    """One piece of server state that changed during a run, outside its scratch database.

    kind: a key of CATALOGS; key: (name,) for roles, databases and ALTER SYSTEM settings,
    (role, database, setting) for role/database settings ('' for "all"); action:
    "created", "changed" or "dropped"; before/after: attributes or values ('' for none);
    undone: txnlab removed it (or recreated the dropped maintenance database);
    problem: the server's error when undoing failed, else ''. Neither undone nor a
    problem: txnlab did not try (on a server it did not start, it only reports).
    """

    kind: str
    key: Key
    action: str
    before: str = ""
    after: str = ""
    undone: bool = False
    problem: str = ""


class Footprint:
    """`Footprint(dsn, maintenance_db, undo=...)` reads the server-wide state now; `settle()`
    after the run reports what changed and, with `undo`, removes what appeared.

    `dsn` is any database of the server (txnlab uses the scratch database, which survives
    whatever the scenario dropped); `maintenance_db` is recreated, with `undo`, if the run
    dropped it. No connection is kept during the run: a scenario's view of the server
    must not show one of txnlab's. Raises ServerError when the server cannot be reached.
    """

    def __init__(self, dsn: str, maintenance_db: str, *, undo: bool) -> None:
        self.dsn = dsn
        self.maintenance_db = maintenance_db
        self.undo = undo
        self._conn = self._connect()
        try:
            self.before = self._snapshot()
        finally:
            self._conn.close()

    def _connect(self) -> psycopg2.extensions.connection:
        return connect(self.dsn, autocommit=True, application_name="txnlab footprint")

    def settle(self) -> list[ServerChange]:
        """Compare with the state before and undo what the run created; the changes, catalog by catalog.

        Raises ServerError when the server cannot be reached.
        """
        self._conn = self._connect()
        try:
            after = self._snapshot()
            changes = [change for kind in CATALOGS for change in _compare(kind, self.before[kind], after[kind])]
            created = {(c.kind, c.key[0]) for c in changes if c.action == "created"}
            changes = [c for c in changes if not _goes_with(c, created)]
            with self._conn.cursor() as cur:
                settled = [self._undo(cur, change) for change in changes]
                if any(c.kind == "setting" and c.undone for c in settled):
                    cur.execute("SELECT pg_reload_conf()")
            return settled
        finally:
            self._conn.close()

    def _snapshot(self) -> Snapshot:
        with self._conn.cursor() as cur:
            return {kind: _read(cur, query) for kind, query in CATALOGS.items()}

    def _undo(self, cur: psycopg2.extensions.cursor, change: ServerChange) -> ServerChange:
        """Remove what the run created; recreate a dropped maintenance database; leave the rest."""
        statement = self._undo_statement(change) if self.undo else None
        if statement is None:
            return change
        try:
            try:
                cur.execute(statement)
            except psycopg2.errors.DependentObjectsStillExist:
                if change.kind != "role":
                    raise
                # It owns objects or holds privileges in the scratch database: drop those first.
                # DROP OWNED needs the role's privileges: its creator may grant itself the role
                # (CREATEROLE, or ADMIN OPTION from creating it on PostgreSQL 16+).
                role = sql.Identifier(change.key[0])
                cur.execute(sql.SQL("GRANT {0} TO CURRENT_USER; DROP OWNED BY {0}; DROP ROLE {0}").format(role))
        except psycopg2.Error as exc:
            return replace(change, problem=first_line(exc))
        return replace(change, undone=True)

    def _undo_statement(self, change: ServerChange) -> sql.Composable | None:
        name = sql.Identifier(change.key[0])
        if change.action == "dropped" and change.kind == "database" and change.key[0] == self.maintenance_db:
            return sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(name)
        if change.action != "created":
            return None
        if change.kind == "role":
            return sql.SQL("DROP ROLE {}").format(name)
        if change.kind == "database":
            return sql.SQL("DROP DATABASE {}").format(name)  # no FORCE: one still in use is left
        if change.kind == "setting":
            return sql.SQL("ALTER SYSTEM RESET {}").format(name)
        role, database, setting = change.key
        reset = sql.SQL("RESET {}").format(sql.Identifier(setting))
        if not role:
            return sql.SQL("ALTER DATABASE {} {}").format(sql.Identifier(database), reset)
        target = sql.SQL("ALTER ROLE {}").format(sql.Identifier(role))
        if database:
            target = sql.SQL("{} IN DATABASE {}").format(target, sql.Identifier(database))
        return sql.SQL("{} {}").format(target, reset)


def _goes_with(change: ServerChange, created: set[tuple[str, str]]) -> bool:
    """A role/database setting of a role or database the run created: it goes when they are dropped."""
    if change.kind != "role/database setting":
        return False
    role, database, _ = change.key
    return ("role", role) in created or ("database", database) in created


def _read(cur: psycopg2.extensions.cursor, query: str) -> dict[Key, str] | None:
    """{key: value} rows of one catalog query; None when the role may not read the catalog."""
    try:
        cur.execute(query, {"scratch": SCRATCH_PATTERN})
    except psycopg2.errors.InsufficientPrivilege:
        return None
    return {tuple(row[:-1]): row[-1] or "" for row in cur.fetchall()}


def _compare(kind: str, before: dict[Key, str] | None, after: dict[Key, str] | None) -> list[ServerChange]:
    """What appeared, changed value, or disappeared between two readings of one catalog."""
    if before is None or after is None:
        return []
    created = [ServerChange(kind, key, "created", after=after[key]) for key in after if key not in before]
    changed = [
        ServerChange(kind, key, "changed", before=before[key], after=after[key])
        for key in after
        if key in before and before[key] != after[key]
    ]
    dropped = [ServerChange(kind, key, "dropped", before=before[key]) for key in before if key not in after]
    return created + changed + dropped


def maintenance_database(server_dsn: str) -> str:
    """The database a DSN connects to, with libpq's defaults (PGDATABASE, then the user name)."""
    params = psycopg2.extensions.parse_dsn(server_dsn)
    user = params.get("user") or os.environ.get("PGUSER") or getpass.getuser()
    return params.get("dbname") or os.environ.get("PGDATABASE") or user
