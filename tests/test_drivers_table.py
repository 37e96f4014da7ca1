"""`txnlab drivers`: the table of driver behaviours, derived live on the real server.

The golden table below is every cell as the installed drivers produce it; a driver upgrade
that changes what is sent or what happens fails test_every_cell_matches_the_golden_table,
naming the cell and the driver's version (as psycopg2 2.9 changed `with conn:`).
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import leftovers
from txnlab.drivers_table import catalogue
from txnlab.drivers_table.bench import Bench, run_probes
from txnlab.drivers_table.model import Behaviour, Cell, Driver, DriversTable
from txnlab.drivers_table.render import cell_text, render_text
from txnlab.timeline import JSON_SCHEMA_VERSION

pytestmark = pytest.mark.database

# (behaviour, driver): (what the tap must record, as fnmatch patterns; what happened).
# asyncpg numbers its savepoints from a process-wide counter, hence the one wildcard.
GOLDEN: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ('first-statement', 'psycopg2'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)'),
        'server: idle in transaction; driver: INTRANS',
    ),
    ('first-statement', 'psycopg'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)'),
        'server: idle in transaction; driver: INTRANS',
    ),
    ('first-statement', 'asyncpg'): (
        ('INSERT INTO t VALUES (1)',),
        'server: idle; driver: is_in_transaction()=False; committed: 1',
    ),
    ('first-statement', 'sqlalchemy+psycopg2'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)'),
        'autobegin: server: idle in transaction; in_transaction()=True',
    ),
    ('first-statement', 'sqlalchemy+psycopg'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)'),
        'autobegin: server: idle in transaction; in_transaction()=True',
    ),
    ('first-statement', 'sqlalchemy+asyncpg'): (
        ('BEGIN;', 'INSERT INTO t VALUES (1)'),
        'autobegin: server: idle in transaction; in_transaction()=True',
    ),
    ('with-block', 'psycopg2'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'COMMIT'),
        'committed: 1; closed=False, session idle',
    ),
    ('with-block', 'psycopg'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'COMMIT'),
        'committed: 1; closed=True, session ended',
    ),
    ('with-block', 'sqlalchemy+psycopg2'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'ROLLBACK'),
        'committed: 0; after: idle (pooled)',
    ),
    ('with-block', 'sqlalchemy+psycopg'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'ROLLBACK'),
        'committed: 0; after: idle (pooled)',
    ),
    ('with-block', 'sqlalchemy+asyncpg'): (
        ('BEGIN;', 'INSERT INTO t VALUES (1)', 'ROLLBACK;'),
        'committed: 0; after: idle (pooled)',
    ),
    ('with-block-autocommit', 'psycopg2'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'COMMIT'),
        'committed: 1; closed=False, session idle',
    ),
    ('with-block-autocommit', 'psycopg'): (
        ('INSERT INTO t VALUES (1)',),
        'committed: 1; closed=True, session ended',
    ),
    ('failed-statement', 'psycopg2'): (
        ('BEGIN', 'SELECT 1/0', 'SELECT 1', 'ROLLBACK', 'BEGIN', 'SELECT 1'),
        '22012, then 25P02 (driver: INERROR); after rollback(): ok',
    ),
    ('failed-statement', 'psycopg'): (
        ('BEGIN', 'SELECT 1/0', 'SELECT 1', 'ROLLBACK', 'BEGIN', 'SELECT 1'),
        '22012, then 25P02 (driver: INERROR); after rollback(): ok',
    ),
    ('failed-statement', 'asyncpg'): (
        ('SELECT 1/0', 'SELECT 1'),
        '22012, then ok (driver: is_in_transaction()=False); server: idle',
    ),
    ('failed-statement', 'sqlalchemy+psycopg2'): (
        ('BEGIN', 'SELECT 1/0', 'SELECT 1', 'ROLLBACK', 'BEGIN', 'SELECT 1'),
        '22012, then 25P02; after rollback(): ok',
    ),
    ('failed-statement', 'sqlalchemy+psycopg'): (
        ('BEGIN', 'SELECT 1/0', 'SELECT 1', 'ROLLBACK', 'BEGIN', 'SELECT 1'),
        '22012, then 25P02; after rollback(): ok',
    ),
    ('failed-statement', 'sqlalchemy+asyncpg'): (
        ('BEGIN;', 'SELECT 1/0', 'SELECT 1', 'ROLLBACK;', 'BEGIN;', 'SELECT 1'),
        '22012, then 25P02; after rollback(): ok',
    ),
    ('savepoint', 'psycopg2'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'SAVEPOINT s', 'INSERT INTO t VALUES (2)', 'RELEASE SAVEPOINT s', 'COMMIT'),
        'no API: SQL, commit(): committed: 2',
    ),
    ('savepoint', 'psycopg'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'SAVEPOINT "_pg3_1"', 'INSERT INTO t VALUES (2)', 'RELEASE "_pg3_1"', 'COMMIT'),
        'transaction(), commit(): committed: 2',
    ),
    ('savepoint', 'asyncpg'): (
        ('BEGIN;', 'INSERT INTO t VALUES (1)', 'SAVEPOINT __asyncpg_savepoint_*__;', 'INSERT INTO t VALUES (2)', 'RELEASE SAVEPOINT __asyncpg_savepoint_*__;', 'COMMIT;'),
        'nested transaction(): committed: 2',
    ),
    ('savepoint', 'sqlalchemy+psycopg2'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'SAVEPOINT sa_savepoint_1', 'INSERT INTO t VALUES (2)', 'RELEASE SAVEPOINT sa_savepoint_1', 'COMMIT'),
        'begin_nested(), commit(): committed: 2',
    ),
    ('savepoint', 'sqlalchemy+psycopg'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'SAVEPOINT sa_savepoint_1', 'INSERT INTO t VALUES (2)', 'RELEASE SAVEPOINT sa_savepoint_1', 'COMMIT'),
        'begin_nested(), commit(): committed: 2',
    ),
    ('savepoint', 'sqlalchemy+asyncpg'): (
        ('BEGIN;', 'INSERT INTO t VALUES (1)', 'SAVEPOINT sa_savepoint_1', 'INSERT INTO t VALUES (2)', 'RELEASE SAVEPOINT sa_savepoint_1', 'COMMIT;'),
        'begin_nested(), commit(): committed: 2',
    ),
    ('autocommit', 'psycopg2'): (
        ('INSERT INTO t VALUES (1)',),
        'server: idle; committed: 1',
    ),
    ('autocommit', 'psycopg'): (
        ('INSERT INTO t VALUES (1)',),
        'server: idle; committed: 1',
    ),
    ('autocommit', 'asyncpg'): (
        ('INSERT INTO t VALUES (1)',),
        'always, no switch: server: idle; committed: 1',
    ),
    ('autocommit', 'sqlalchemy+psycopg2'): (
        ('INSERT INTO t VALUES (1)',),
        'server: idle; committed: 1',
    ),
    ('autocommit', 'sqlalchemy+psycopg'): (
        ('INSERT INTO t VALUES (1)',),
        'server: idle; committed: 1',
    ),
    ('autocommit', 'sqlalchemy+asyncpg'): (
        ('INSERT INTO t VALUES (1)',),
        'server: idle; committed: 1',
    ),
    ('isolation-level', 'psycopg2'): (
        ('BEGIN ISOLATION LEVEL SERIALIZABLE', "SELECT current_setting('transaction_isolation')"),
        'set_session(): transaction runs serializable',
    ),
    ('isolation-level', 'psycopg'): (
        ('BEGIN ISOLATION LEVEL SERIALIZABLE', "SELECT current_setting('transaction_isolation')"),
        'isolation_level set: transaction runs serializable',
    ),
    ('isolation-level', 'asyncpg'): (
        ('BEGIN ISOLATION LEVEL SERIALIZABLE;', "SELECT current_setting('transaction_isolation')"),
        'transaction(isolation=): runs serializable',
    ),
    ('isolation-level', 'sqlalchemy+psycopg2'): (
        ('BEGIN ISOLATION LEVEL SERIALIZABLE', "SELECT current_setting('transaction_isolation')"),
        'execution_options(): runs serializable',
    ),
    ('isolation-level', 'sqlalchemy+psycopg'): (
        ('BEGIN ISOLATION LEVEL SERIALIZABLE', "SELECT current_setting('transaction_isolation')"),
        'execution_options(): runs serializable',
    ),
    ('isolation-level', 'sqlalchemy+asyncpg'): (
        ('BEGIN ISOLATION LEVEL SERIALIZABLE;', "SELECT current_setting('transaction_isolation')"),
        'execution_options(): runs serializable',
    ),
    ('isolation-level-later', 'psycopg2'): (
        ('BEGIN', 'SELECT 1', "SELECT current_setting('transaction_isolation')", 'ROLLBACK', 'BEGIN', "SELECT current_setting('transaction_isolation')"),
        'set_session(): refused (ProgrammingError); this transaction: read committed, next: read committed',
    ),
    ('isolation-level-later', 'psycopg'): (
        ('BEGIN', 'SELECT 1', "SELECT current_setting('transaction_isolation')", 'ROLLBACK', 'BEGIN', "SELECT current_setting('transaction_isolation')"),
        'isolation_level set: refused (ProgrammingError); this transaction: read committed, next: read committed',
    ),
    ('isolation-level-later', 'asyncpg'): (
        ('BEGIN;', 'SHOW transaction_isolation;', "SELECT current_setting('transaction_isolation')"),
        'nested transaction(isolation=): refused (InterfaceError); this transaction: read committed',
    ),
    ('isolation-level-later', 'sqlalchemy+psycopg2'): (
        ('BEGIN', 'SELECT 1', "SELECT current_setting('transaction_isolation')", 'ROLLBACK', 'BEGIN', "SELECT current_setting('transaction_isolation')"),
        'execution_options(): refused (InvalidRequestError); this transaction: read committed, next: read committed',
    ),
    ('isolation-level-later', 'sqlalchemy+psycopg'): (
        ('BEGIN', 'SELECT 1', "SELECT current_setting('transaction_isolation')", 'ROLLBACK', 'BEGIN', "SELECT current_setting('transaction_isolation')"),
        'execution_options(): refused (InvalidRequestError); this transaction: read committed, next: read committed',
    ),
    ('isolation-level-later', 'sqlalchemy+asyncpg'): (
        ('BEGIN;', 'SELECT 1', "SELECT current_setting('transaction_isolation')", 'ROLLBACK;', 'BEGIN;', "SELECT current_setting('transaction_isolation')"),
        'execution_options(): refused (InvalidRequestError); this transaction: read committed, next: read committed',
    ),
    ('pool-return', 'psycopg2'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'ROLLBACK'),
        'putconn(): committed: 0; pooled: idle',
    ),
    ('pool-return', 'psycopg'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'ROLLBACK'),
        'putconn(): committed: 0; pooled: idle',
    ),
    ('pool-return', 'asyncpg'): (
        ('BEGIN;', 'INSERT INTO t VALUES (1)', 'ROLLBACK', 'SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;'),
        'release(): committed: 0; pooled: idle',
    ),
    ('pool-return', 'sqlalchemy+psycopg2'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'ROLLBACK'),
        'close(): committed: 0; pooled: idle',
    ),
    ('pool-return', 'sqlalchemy+psycopg'): (
        ('BEGIN', 'INSERT INTO t VALUES (1)', 'ROLLBACK'),
        'close(): committed: 0; pooled: idle',
    ),
    ('pool-return', 'sqlalchemy+asyncpg'): (
        ('BEGIN;', 'INSERT INTO t VALUES (1)', 'ROLLBACK;'),
        'close(): committed: 0; pooled: idle',
    ),
    ('shared-connection', 'psycopg2'): (
        ('SELECT pg_sleep(0.2)', 'SELECT pg_sleep(0.2)'),
        'both ran, one after the other',
    ),
    ('shared-connection', 'psycopg'): (
        ('SELECT pg_sleep(0.2)', 'SELECT pg_sleep(0.2)'),
        'both ran, one after the other',
    ),
    ('shared-connection', 'asyncpg'): (
        ('SELECT pg_sleep(0.2)',),
        'first task: ok; second: InterfaceError: cannot perform operation: another operation is in progress',
    ),
    ('failed-flush', 'sqlalchemy+psycopg2'): (
        ('BEGIN', 'INSERT INTO t (id) VALUES (1)', 'ROLLBACK', 'BEGIN', 'SELECT 1'),
        'flush: 23505, then PendingRollbackError; rollback() sent nothing; then ok',
    ),
    ('failed-flush', 'sqlalchemy+psycopg'): (
        ('BEGIN', 'INSERT INTO t (id) VALUES ($1::INTEGER)', 'ROLLBACK', 'BEGIN', 'SELECT 1'),
        'flush: 23505, then PendingRollbackError; rollback() sent nothing; then ok',
    ),
    ('failed-flush', 'sqlalchemy+asyncpg'): (
        ('BEGIN;', 'INSERT INTO t (id) VALUES ($1::INTEGER)', 'ROLLBACK;', 'BEGIN;', 'SELECT 1'),
        'flush: 23505, then PendingRollbackError; rollback() sent nothing; then ok',
    ),
}


@pytest.fixture(scope="module")
def table(server_dsn: str) -> DriversTable:
    return run_probes(server_dsn, catalogue.drivers(), catalogue.BEHAVIOURS, catalogue.probes())


def _matches(cell: Cell, sent: tuple[str, ...], happened: str) -> bool:
    return (cell.applies and cell.error is None and cell.happened == happened and len(cell.sent) == len(sent)
            and all(fnmatch.fnmatchcase(s, pattern) for s, pattern in zip(cell.sent, sent)))


def test_every_cell_matches_the_golden_table(table: DriversTable) -> None:
    changed = []
    for behaviour in table.behaviours:
        for driver in table.drivers:
            cell = table.cell(behaviour.key, driver.key)
            expected = GOLDEN.get((behaviour.key, driver.key))
            if expected is None:
                if cell.applies:
                    changed.append(f"{behaviour.key} on {driver.label} {driver.version}: expected no cell, got {cell}")
            elif not _matches(cell, *expected):
                changed.append(
                    f"{behaviour.key} on {driver.label} {driver.version}: expected sent {expected[0]} -> "
                    f"{expected[1]!r}; got sent {cell.sent} -> {cell.happened!r}" + (f" ({cell.error})" if cell.error else "")
                )
    assert not changed, "driver behaviour changed:\n" + "\n".join(changed)


def test_the_header_names_each_installed_driver_version(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("drivers", "--format", "json")
    assert code == 0 and err == ""
    document = json.loads(out)
    import importlib.metadata

    versions = {d["key"]: d["version"] for d in document["drivers"]}
    assert versions["psycopg2"] == importlib.metadata.version("psycopg2-binary")
    assert versions["psycopg"] == importlib.metadata.version("psycopg")
    assert versions["asyncpg"] == importlib.metadata.version("asyncpg")
    assert versions["sqlalchemy+asyncpg"] == importlib.metadata.version("SQLAlchemy")


def test_json_has_every_behaviour_and_driver_with_the_exact_sent_text(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("drivers", "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["schema_version"] == JSON_SCHEMA_VERSION and document["server_version"]
    assert [b["key"] for b in document["behaviours"]] == [b.key for b in catalogue.BEHAVIOURS]
    assert [d["key"] for d in document["drivers"]] == [d.key for d in catalogue.drivers()]
    for behaviour in document["behaviours"]:
        assert set(behaviour["cells"]) == {d["key"] for d in document["drivers"]}
        for cell in behaviour["cells"].values():
            assert set(cell) == {"applies", "sent", "happened", "error", "teardown"}
    reset = next(b for b in document["behaviours"] if b["key"] == "pool-return")["cells"]["asyncpg"]["sent"]
    assert "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;" in reset  # newlines kept


def test_markdown_is_one_table_with_a_row_per_behaviour(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("drivers", "--format", "markdown")
    lines = out.strip().splitlines()
    assert code == 0
    assert lines[0].startswith("| on PostgreSQL") and "asyncpg " in lines[0]
    assert len(lines) == 2 + len(catalogue.BEHAVIOURS)
    assert all(line.count("|") == lines[0].count("|") for line in lines)  # no cell breaks the table
    assert "SAVEPOINT \"\\_pg3\\_1\"" in out or 'SAVEPOINT "\\_pg3\\_1"' in out


def test_text_fits_the_terminal_width_as_a_grid_or_a_line_per_driver(table: DriversTable) -> None:
    from txnlab.render.fit import display_width

    for width in (60, 80, 120, 140, 200, 300):
        text = render_text(table, width)
        assert display_width(text) <= width, width
    # a grid only where every column holds its widest identifier (tests/test_r2_drivers_table.py)
    assert not render_text(table, 140).startswith("┌") and render_text(table, 300).startswith("┌")
    narrow = render_text(table, 80)
    assert "  asyncpg " in narrow and "RESET ALL;" in narrow and "—" in narrow


def test_html_page_holds_the_drivers_section(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "drivers.html"
    code, out, _ = cli("drivers", "-o", str(page))
    html = page.read_text(encoding="utf-8")
    assert code == 0 and "SERIALIZABLE" in out
    assert '<section class="drivers" id="drivers">' in html and "Content-Security-Policy" in html
    assert "<code>RELEASE &quot;_pg3_1&quot;</code>" in html


def test_an_output_file_that_is_not_html_is_refused_before_any_probe(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("drivers", "-o", str(tmp_path / "table.txt"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "must end in .html" in err


def test_the_tap_records_a_prepared_statement_each_time_it_runs(server_dsn: str) -> None:
    """asyncpg caches prepared statements: a second run sends Bind/Execute and no Parse."""
    import asyncio

    import asyncpg

    from txnlab.drivers_table.bench import connect_kwargs

    def twice(bench: Bench) -> Cell:
        async def main() -> None:
            conn = await asyncpg.connect(**connect_kwargs(bench))
            try:
                for _ in range(2):
                    await conn.fetchval("SELECT count(*) FROM t")
            finally:
                await conn.close()
        asyncio.run(main())
        return Cell(bench.sent(), "")

    drivers = (Driver("asyncpg", "asyncpg", "asyncpg", "x"),)
    table = run_probes(server_dsn, drivers, (Behaviour("twice", "twice"),), {("twice", "asyncpg"): twice})
    assert table.cell("twice", "asyncpg").sent == ("SELECT count(*) FROM t",) * 2


def test_a_probe_that_raises_becomes_its_cell_and_the_table_goes_on(server_dsn: str) -> None:
    import psycopg2

    def leaves_a_transaction_and_raises(bench: Bench) -> Cell:
        conn = psycopg2.connect(bench.dsn)  # never closed: the runner must end its session
        conn.cursor().execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("the driver did something unexpected")

    def counts(bench: Bench) -> Cell:
        return Cell((), f"server: {bench.states()}; committed: {bench.committed()}")

    behaviours = (Behaviour("raises", "raises"), Behaviour("after", "after"))
    drivers = (Driver("psycopg2", "psycopg2", "psycopg2-binary", "x"),)
    table = run_probes(server_dsn, drivers, behaviours,
                       {("raises", "psycopg2"): leaves_a_transaction_and_raises, ("after", "psycopg2"): counts})
    failed = table.cell("raises", "psycopg2")
    assert failed.error == "RuntimeError: the driver did something unexpected"
    assert failed.sent == ("BEGIN", "INSERT INTO t VALUES (1)")
    assert cell_text(failed) == "BEGIN · INSERT INTO t VALUES (1) → error: RuntimeError: the driver did something unexpected"
    assert table.cell("after", "psycopg2").happened == "server: no session; committed: 0"


def test_nothing_is_left_behind(cli, admin, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the tap's socket directory goes here
    code, _, _ = cli("drivers", "--format", "json")
    assert code == 0
    assert leftovers(admin, os.getpid()) == ([], [])
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_server_is_one_line_and_exit_3(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("drivers", "--dsn", f"host={tmp_path} port=1 dbname=postgres")
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and err.startswith("txnlab: error: cannot connect to PostgreSQL")


def test_ctrl_c_during_the_probes_exits_130_and_leaves_nothing(server_dsn: str, admin) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "TXNLAB_DSN": server_dsn, "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-m", "txnlab", "drivers"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until its probes run in its scratch database
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE %s AND backend_type = 'client backend'",
                        [f"txnlab\\_scratch\\_{process.pid}\\_%"])
            if cur.fetchone()[0] >= 2:
                break
        time.sleep(0.01)
    else:
        process.kill()
        pytest.fail("the probes never started")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert leftovers(admin, process.pid) == ([], [])


def test_myths_names_the_driver_version_each_claim_was_checked_with(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import importlib.metadata

    psycopg2_version = f"psycopg2 {importlib.metadata.version('psycopg2-binary')}"
    code, out, _ = cli("myths", "--format", "json")
    claims = json.loads(out)["claims"]
    assert code == 0 and claims
    assert all(claim["checked_with"] == [psycopg2_version] for claim in claims)
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli("myths")
    assert code == 0 and "checked with" in out and out.count(psycopg2_version) == len(claims)
    code, out, _ = cli("myths", "--format", "markdown")
    assert "| checked with" in out and psycopg2_version in out


def test_report_with_drivers_ends_with_the_drivers_section(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page, handout = tmp_path / "report.html", tmp_path / "report.md"
    code, _, _ = cli("report", "atm-lost-update", "--level", "rc", "--drivers", "-o", str(page))
    html = page.read_text(encoding="utf-8")
    assert code == 0 and html.index('id="atm-lost-update"') < html.index('<section class="drivers" id="drivers">')
    code, _, _ = cli("report", "atm-lost-update", "--level", "rc", "--drivers", "-o", str(handout))
    assert code == 0 and "## Python drivers" in handout.read_text(encoding="utf-8")
    code, _, _ = cli("report", "atm-lost-update", "--level", "rc", "-o", str(page))
    assert code == 0 and 'id="drivers"' not in page.read_text(encoding="utf-8")
