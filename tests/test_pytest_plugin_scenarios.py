"""The pytest plugin's scenario files, run as a user runs them: a real pytest process over a
small project (pytester), the plugin loaded through its pytest11 entry point, on the suite's
server (`--txnlab-dsn`, or a pytest-postgresql fixture the project's ini names)."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg2.extensions
import pytest

from conftest import leftovers

pytest_plugins = ["pytester"]

# A spec and the output PostgreSQL's isolationtester prints for it (checked against
# isolationtester 18 and the same on PostgreSQL 15): written here, so that these tests need
# neither PostgreSQL's corpus nor one server version's behaviour.
READ_AFTER_COMMIT_SPEC = """\
setup { CREATE TABLE t (i int); INSERT INTO t VALUES (1); }
teardown { DROP TABLE t; }

session s1
setup { BEGIN; }
step s1u { UPDATE t SET i = 2; }
step s1c { COMMIT; }

session s2
step s2r { SELECT i FROM t; }

permutation s1u s2r s1c s2r
"""
READ_AFTER_COMMIT_OUT = """\
Parsed test spec with 2 sessions

starting permutation: s1u s2r s1c s2r
step s1u: UPDATE t SET i = 2;
step s2r: SELECT i FROM t;
i
-
1
(1 row)

step s1c: COMMIT;
step s2r: SELECT i FROM t;
i
-
2
(1 row)

"""
# No address that can answer: a project whose tests pass with it in TXNLAB_DSN ran elsewhere.
UNREACHABLE_DSN = "postgresql://nobody@127.0.0.1:9/nowhere?connect_timeout=2"


def transfer_yaml(name: str, *, rr_errors: str = '{s2u: "40001"}', permutations: bool = False) -> str:
    """Two debits of one row at READ COMMITTED and REPEATABLE READ: s2's waits for s1's row
    lock, and at REPEATABLE READ fails with 40001 once s1 commits (`rr_errors`: what the
    file expects there; `{}` contradicts the server)."""
    orders = "permutations:\n  - [s1u, s2u, s1c, s2c]\n  - [s1u, s1c, s2u, s2c]\n" if permutations else ""
    return f"""\
name: {name}
title: Two debits of one account
summary: The second debit waits for the first one's row lock.
levels: [rc, rr]
setup: |
  CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
  INSERT INTO accounts VALUES (1, 100);
sessions:
  s1: {{}}
  s2: {{}}
steps:
  - {{name: s1u, session: s1, sql: UPDATE accounts SET balance = balance - 10 WHERE id = 1}}
  - {{name: s2u, session: s2, sql: UPDATE accounts SET balance = balance - 20 WHERE id = 1}}
  - {{name: s1c, session: s1, sql: COMMIT}}
  - {{name: s2c, session: s2, sql: COMMIT}}
{orders}expect:
  rc:
    blocked: [s2u]
  rr:
    blocked: [s2u]
    errors: {rr_errors}
"""


PYTHON_SCENARIO = '''\
"""A Python scenario: s2's read waits for nothing, its FOR UPDATE for s1's lock."""

SCENARIO = {
    "name": "locked-read",
    "title": "FOR UPDATE waits for the row's writer",
    "summary": "s2 reads the row freely, then waits to lock it until s1 commits.",
    "levels": ["rc"],
    "setup": "CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL); INSERT INTO items VALUES (1, 0);",
    "sessions": {"s1": {}, "s2": {}},
    "steps": [
        {"name": "s1u", "session": "s1", "sql": "UPDATE items SET n = 1 WHERE id = 1"},
        {"name": "s2r", "session": "s2", "sql": "SELECT n FROM items WHERE id = 1"},
        {"name": "s2l", "session": "s2", "sql": "SELECT n FROM items WHERE id = 1 FOR UPDATE"},
        {"name": "s1c", "session": "s1", "sql": "COMMIT"},
        {"name": "s2c", "session": "s2", "sql": "COMMIT"},
    ],
    "expect": {"rc": {"blocked": ["s2l"], "rows": {"s2r": [[0]], "s2l": [[1]]}}},
}


def play(run):
    for step in ("s1u", "s2r", "s2l", "s1c", "s2c"):
        run.step(step)
'''

# Every test, scenario or not, appends the worker it ran on (PYTEST_XDIST_WORKER), that
# process's pid and the database its lab is in (the server's current_database()).
RECORDING_CONFTEST = '''\
import os
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest


@pytest.fixture(autouse=True)
def record_database(txnlab_lab):
    yield
    with closing(psycopg2.connect(txnlab_lab.dsn)) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        (database,), = cur.fetchall()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(Path(__file__).parent / f"db-{worker}.txt", "a") as out:
        out.write(f"{os.getpid()} {database}\\n")
'''

INTERLEAVING_TEST = '''\
import psycopg2.extensions
import pytest


@pytest.mark.parametrize("n", range(4))
def test_an_interleaving_runs_in_the_lab_database(txnlab_interleave, txnlab_lab, n):
    with txnlab_interleave(setup="CREATE TABLE t (n int)") as moves:
        (database,), = moves.query("SELECT current_database()")
    assert database == psycopg2.extensions.parse_dsn(txnlab_lab.dsn)["dbname"]
'''


def run_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def scratch_databases(admin: psycopg2.extensions.connection) -> set[str]:
    with admin.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'txnlab\\_scratch\\_%'")
        return {row[0] for row in cur.fetchall()}


def write_spec(name: str, specs: Path, expected: Path | None, output: str = READ_AFTER_COMMIT_OUT) -> None:
    """READ_AFTER_COMMIT_SPEC as spec NAME in `specs`, and `output` as its expected output in
    `expected` if given."""
    (specs / f"{name}.spec").write_text(READ_AFTER_COMMIT_SPEC)
    if expected is not None:
        (expected / f"{name}.out").write_text(output)


def test_a_project_without_scenario_files_notices_nothing(pytester: pytest.Pytester, server_dsn: str) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    ran = run_pytest(pytester, "-q", f"--txnlab-dsn={server_dsn}")
    ran.assert_outcomes(passed=1)
    collected = run_pytest(pytester, "--collect-only", "-q", f"--txnlab-dsn={server_dsn}")
    listed = [line for line in collected.outlines if "::" in line]
    assert listed == ["test_plain.py::test_plain"]
    for output in (ran, collected):
        assert "txnlab" not in (output.stdout.str() + output.stderr.str()).lower()


def test_scenario_files_are_collected_as_one_test_per_level_and_permutation(
    pytester: pytest.Pytester, server_dsn: str,
) -> None:
    pytester.makeini("[pytest]\ntxnlab_scenarios = txn/lessons\n")
    (pytester.path / "bank" / "deep").mkdir(parents=True)
    (pytester.path / "bank" / "deep" / "transfer.txn.yaml").write_text(transfer_yaml("transfer", permutations=True))
    lessons, expected = pytester.path / "txn" / "lessons", pytester.path / "txn" / "expected"
    lessons.mkdir(parents=True)
    expected.mkdir()
    (lessons / "debits.yaml").write_text(transfer_yaml("debits"))
    (lessons / "locked.py").write_text(PYTHON_SCENARIO)
    write_spec("read-after-commit", lessons, expected)
    # Were these taken for scenarios, each would be a collection error (no SCENARIO in them).
    (lessons / "_helper.py").write_text("ACCOUNTS = 2\n")
    (lessons / "conftest.py").write_text("ACCOUNTS = 2\n")
    (pytester.path / "outside.yaml").write_text(transfer_yaml("outside"))

    result = run_pytest(pytester, "-v", f"--txnlab-dsn={server_dsn}")

    passed = sorted(re.findall(r"^(\S+::.+?) PASSED", result.stdout.str(), re.MULTILINE))
    assert passed == [
        "bank/deep/transfer.txn.yaml::transfer[read committed, permutation 2]",
        "bank/deep/transfer.txn.yaml::transfer[read committed]",
        "bank/deep/transfer.txn.yaml::transfer[repeatable read, permutation 2]",
        "bank/deep/transfer.txn.yaml::transfer[repeatable read]",
        "txn/lessons/debits.yaml::debits[read committed]",
        "txn/lessons/debits.yaml::debits[repeatable read]",
        "txn/lessons/locked.py::locked-read[read committed]",
        "txn/lessons/read-after-commit.spec::read-after-commit",
    ]
    result.assert_outcomes(passed=8)


def test_a_contradicted_expectation_fails_with_its_timeline_and_leaves_no_scratch_database(
    pytester: pytest.Pytester, server_dsn: str, admin: psycopg2.extensions.connection,
) -> None:
    pytester.makefile(".txn.yaml", transfer=transfer_yaml("transfer", rr_errors="{}"))
    # The run's own pid and its lab's database, to prove the check below could see them.
    pytester.makeconftest("import os, pathlib\n"
                          "pathlib.Path('pid.txt').write_text(str(os.getpid()))\n")
    pytester.makepyfile(test_lab="def test_lab_database(txnlab_lab):\n"
                                 "    import pathlib, psycopg2.extensions\n"
                                 "    name = psycopg2.extensions.parse_dsn(txnlab_lab.dsn)['dbname']\n"
                                 "    pathlib.Path('lab.txt').write_text(name)\n")
    before = scratch_databases(admin)

    result = run_pytest(pytester, "-q", f"--txnlab-dsn={server_dsn}")

    result.assert_outcomes(passed=2, failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "transfer at repeatable read: the server did not do what the scenario expects (1 difference)" in output
    assert re.search(r"│\s*#\s*│\s*s1\s*│\s*s2\s*│", output), "the timeline table with a column per session"
    assert "failed steps: expected none, observed s2u 40001" in output
    assert "FAILED transfer.txn.yaml::transfer[repeatable read]" in output
    for txnlab_frame in ("Traceback", "src/txnlab", "site-packages/txnlab"):
        assert txnlab_frame not in output

    pid = int((pytester.path / "pid.txt").read_text())
    lab_database = (pytester.path / "lab.txt").read_text()
    assert lab_database.startswith(f"txnlab_scratch_{pid}_")
    assert leftovers(admin, pid) == ([], [])
    assert not {name for name in scratch_databases(admin) - before if name.startswith(f"txnlab_scratch_{pid}_")}


def test_a_broken_scenario_file_is_one_collection_error_naming_file_and_line(
    pytester: pytest.Pytester, server_dsn: str,
) -> None:
    good = transfer_yaml("broken")
    pytester.makefile(".txn.yaml", typo=good.replace("summary:", "sumary:"),
                      unknown=good.replace("blocked: [s2u]\n  rr:", "blocked: [s3u]\n  rr:"))

    result = run_pytest(pytester, "--collect-only", "-q", f"--txnlab-dsn={server_dsn}")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    output = result.stdout.str() + result.stderr.str()
    typo, unknown = pytester.path / "typo.txn.yaml", pytester.path / "unknown.txn.yaml"
    assert re.search(rf"^txnlab: {re.escape(str(typo))}:3: unknown key 'sumary'.*did you mean 'summary'",
                     output, re.MULTILINE)
    assert re.search(rf"^txnlab: {re.escape(str(unknown))}:\d+: expectation names unknown step 's3u'$",
                     output, re.MULTILINE)
    assert output.count("txnlab: ") == 2
    for txnlab_frame in ("Traceback", "src/txnlab", "site-packages/txnlab"):
        assert txnlab_frame not in output


def test_specs_pass_on_their_expected_output_fail_with_a_diff_and_skip_without_one(
    pytester: pytest.Pytester, server_dsn: str,
) -> None:
    pytester.makeini("[pytest]\ntxnlab_scenarios = isolation/specs\n")
    specs, expected = pytester.path / "isolation" / "specs", pytester.path / "isolation" / "expected"
    specs.mkdir(parents=True)
    expected.mkdir()
    write_spec("read-after-commit", specs, expected)
    write_spec("doctored", specs, expected, READ_AFTER_COMMIT_OUT.replace("-\n2\n", "-\n3\n"))
    write_spec("unexpected", specs, None)

    result = run_pytest(pytester, "-v", "-rs", f"--txnlab-dsn={server_dsn}")

    result.assert_outcomes(passed=1, failed=1, skipped=1)
    output = result.stdout.str()
    assert re.search(r"^isolation/specs/read-after-commit.spec::read-after-commit PASSED", output, re.MULTILINE)
    assert "doctored: the output differs from isolationtester's expected output" in output
    assert f"--- {expected / 'doctored.out'}\n+++ doctored (this run)\n" in output
    assert "\n-3\n+2\n" in output
    assert re.search(r"^isolation/specs/unexpected.spec::unexpected SKIPPED", output, re.MULTILINE)
    assert f"no expected output for it: unexpected.out is not in {expected}" in output


def test_a_skipped_spec_is_reported_at_the_spec_not_in_txnlabs_source(
    pytester: pytest.Pytester, server_dsn: str,
) -> None:
    pytester.makeini("[pytest]\ntxnlab_scenarios = isolation/specs\n")
    specs = pytester.path / "isolation" / "specs"
    specs.mkdir(parents=True)
    write_spec("unexpected", specs, None)

    result = run_pytest(pytester, "-q", "-rs", f"--txnlab-dsn={server_dsn}")

    result.assert_outcomes(skipped=1)
    result.stdout.re_match_lines([r"^SKIPPED \[1\] isolation/specs/unexpected.spec(:\d+)?: no expected output for it"])
    for txnlab_frame in ("src/txnlab", "site-packages/txnlab"):
        assert txnlab_frame not in result.stdout.str()


def test_xdist_workers_each_run_in_a_scratch_database_of_their_own(
    pytester: pytest.Pytester, server_dsn: str,
) -> None:
    pytester.makefile(".txn.yaml", transfer=transfer_yaml("transfer"), debits=transfer_yaml("debits"))
    pytester.makeconftest(RECORDING_CONFTEST)
    pytester.makepyfile(test_interleavings=INTERLEAVING_TEST)

    result = run_pytest(pytester, "-p", "xdist", "-n", "2", "-q", f"--txnlab-dsn={server_dsn}")

    result.assert_outcomes(passed=8)
    records = {path.name: {tuple(line.split()) for line in path.read_text().splitlines()}
               for path in pytester.path.glob("db-*.txt")}
    assert sorted(records) == ["db-gw0.txt", "db-gw1.txt"]
    ran_in = {}
    for worker, lines in records.items():
        ((pid, database),) = lines  # every test of one worker: one process, one database
        assert database.startswith(f"txnlab_scratch_{pid}_")
        ran_in[worker] = database
    assert ran_in["db-gw0.txt"] != ran_in["db-gw1.txt"]


def test_the_ini_can_name_a_pytest_postgresql_noproc_fixture_as_the_server(
    pytester: pytest.Pytester, server_dsn: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    params = psycopg2.extensions.parse_dsn(server_dsn)
    host, port = params.get("host") or "localhost", int(params.get("port") or 5432)
    pytester.makeini("[pytest]\ntxnlab_server_fixture = postgresql_noproc\n")
    pytester.makeconftest(
        "from pytest_postgresql import factories\n"
        f"postgresql_noproc = factories.postgresql_noproc(host={host!r}, port={port}, "
        f"user={params.get('user') or 'postgres'!r}, password={params.get('password')!r})\n"
    )
    pytester.makepyfile(test_port=(
        "def test_runs_on_the_fixtures_server(txnlab_interleave, postgresql_noproc):\n"
        "    with txnlab_interleave() as moves:\n"
        "        (port,), = moves.query(\"SELECT current_setting('port')::int\")\n"
        "    assert port == int(postgresql_noproc.port)\n"
    ))
    pytester.makefile(".txn.yaml", transfer=transfer_yaml("transfer"))
    # The selection the fixture replaces must not be able to answer.
    monkeypatch.setenv("TXNLAB_DSN", UNREACHABLE_DSN)
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DSN)

    result = run_pytest(pytester, "-q")

    result.assert_outcomes(passed=3)


@pytest.mark.parametrize(("fixture", "message"), [
    ("postgresql_nowhere", "txnlab: txnlab_server_fixture = postgresql_nowhere: there is no fixture of that name"),
    ("tmp_path_factory", "txnlab: txnlab_server_fixture = tmp_path_factory: that fixture is not a pytest-postgresql "
                         "server (postgresql_proc, postgresql_noproc): it gave TempPathFactory"),
], ids=["no-such-fixture", "not-a-server"])
def test_a_server_fixture_that_is_missing_or_no_server_fails_each_test_in_one_line(
    pytester: pytest.Pytester, fixture: str, message: str,
) -> None:
    pytester.makeini(f"[pytest]\ntxnlab_server_fixture = {fixture}\n")
    pytester.makefile(".txn.yaml", transfer=transfer_yaml("transfer"))

    result = run_pytest(pytester, "-q")

    result.assert_outcomes(errors=2)
    output = result.stdout.str()
    body = output.split("==== ERRORS ====")[1].split("short test summary info")[0]
    lines = [line for line in body.splitlines() if line.strip() and not line.startswith(("_", "="))]
    assert len(lines) == 2 and all(line.startswith(message) for line in lines), output


def test_loading_the_plugin_imports_none_of_txnlabs_engine() -> None:
    """A project that uses none of it pays nothing at pytest's startup: the runner, the renderers
    and the CLI (with psycopg 3, pglast, networkx behind them) load when a scenario or fixture is used."""
    import subprocess
    import sys

    probe = ("import sys, txnlab.pytest_plugin\n"
             "print(sorted(m for m in sys.modules if m.startswith(('txnlab.runner', 'txnlab.render', "
             "'txnlab.cli', 'txnlab.workflow', 'psycopg', 'pglast', 'networkx', 'sqlalchemy')) and m != 'psycopg2'"
             " and not m.startswith('psycopg2')))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("ini", "message"), [
    ("txnlab_scenarios = scenarioz", "ERROR: txnlab_scenarios: {root}/scenarioz is not a directory"),
    ("txnlab_step_timeout = soon", "ERROR: txnlab_step_timeout = soon: give a positive number of seconds"),
], ids=["missing-scenario-directory", "step-timeout-not-a-number"])
def test_settings_that_cannot_work_stop_pytest_before_any_test(pytester: pytest.Pytester, ini: str, message: str) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")

    result = run_pytest(pytester, "-q")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message.format(root=pytester.path) in result.stderr.str()
