"""`txnlab specs` as a user meets it: what it finds, the expected files and their
alternatives, the diff of a failure, JSON, --results, not applicable specs, exit codes,
lanes in databases of their own, and nothing left behind after Ctrl-C.

Expected outputs are written by the real isolationtester on the same server (the oracle),
so the tests need it: they skip with the reason when it is absent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import leftovers
from isolation_tools import ISOLATIONTESTER, REGRESS_ENV
from txnlab.server.connect import with_params
from txnlab.server.scratch import drop_database
from txnlab.suite.discovery import spec_cases
from txnlab.suite.lanes import RUNS_ALONE


SIMPLE = """\
# Two sessions update one row; the second waits for the first.
setup { CREATE TABLE accounts (id int PRIMARY KEY, balance int); INSERT INTO accounts VALUES (1, 100); }
teardown { DROP TABLE accounts; }
session s1
setup { BEGIN; }
step r1 { SELECT balance FROM accounts WHERE id = 1; }
step w1 { UPDATE accounts SET balance = balance + 50 WHERE id = 1; }
step c1 { COMMIT; }
session s2
step w2 { UPDATE accounts SET balance = balance - 30 WHERE id = 1; }
step r2 { SELECT balance FROM accounts; }
permutation r1 w1 w2 c1 r2
"""


@pytest.fixture
def cli(cli):  # type: ignore[no-untyped-def]
    """Run `txnlab specs ARGS` in this process against the test server; (code, stdout, stderr)."""
    return lambda *args: cli("specs", *args)


@pytest.fixture
def oracle(server_dsn: str, admin):  # type: ignore[no-untyped-def]
    """`oracle(spec_path) -> str`: what the real isolationtester prints for the spec, run in a
    new database of its own on the test server, as pg_isolation_regress runs it."""
    if not ISOLATIONTESTER.is_file():
        pytest.skip(f"the real isolationtester is not installed at {ISOLATIONTESTER}")
    name = f"txnlab_oracle_{os.getpid()}"

    def run(spec: Path) -> str:
        with admin.cursor() as cur:
            drop_database(cur, name)
            cur.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        done = subprocess.run([str(ISOLATIONTESTER), with_params(server_dsn, dbname=name)], input=spec.read_bytes(),
                              capture_output=True, env={**os.environ, **REGRESS_ENV}, timeout=120)
        return (done.stdout + done.stderr).decode()

    yield run
    with admin.cursor() as cur:
        drop_database(cur, name)


def corpus(tmp_path: Path, specs: dict[str, str]) -> Path:
    """PostgreSQL's layout under tmp_path: specs/NAME.spec, and an empty expected/."""
    (tmp_path / "specs").mkdir(parents=True)
    (tmp_path / "expected").mkdir()
    for name, text in specs.items():
        (tmp_path / "specs" / f"{name}.spec").write_text(textwrap.dedent(text))
    return tmp_path


# --- finding specs and expected files (no server needed) ---------------------------------


def test_a_directory_gives_its_specs_folder_and_expected_files_come_from_beside_it(tmp_path: Path) -> None:
    root = corpus(tmp_path, {"b": SIMPLE, "a": SIMPLE})
    (root / "expected" / "a.out").write_text("x")
    (root / "expected" / "a_2.out").write_text("y")
    (root / "expected" / "a_10.out").write_text("not an alternative pg_regress looks at")
    cases = spec_cases([root], None)
    assert [c.name for c in cases] == ["a", "b"]
    assert cases[0].expected == (root / "expected" / "a.out", root / "expected" / "a_2.out")
    assert cases[1].expected == ()


def test_specs_that_read_server_wide_state_run_alone_and_the_rest_share_lanes() -> None:
    assert RUNS_ALONE.search("SELECT * FROM pg_stat_slru") and RUNS_ALONE.search("FROM pg_get_multixact_stats()")
    assert RUNS_ALONE.search("ALTER SYSTEM SET work_mem = '1MB'") and RUNS_ALONE.search("create  database x")
    assert not RUNS_ALONE.search("CREATE ROLE regress_x; SELECT pg_stat_get_live_tuples('t'::regclass)")


@pytest.mark.parametrize("problem, expected_line", [
    ("missing", "nowhere: no such file or directory"),
    ("empty", "empty: no .spec files in it (nor in"),
    ("not_spec", "notes.txt: not a .spec file"),
    ("bad_expected", "--expected nowhere: no such directory"),
    ("unparsable", "broken.spec:3: expected an SQL block { ... } for step s1a, found 'step'"),
    ("same_name", "two specs are named a:"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str, expected_line: str,
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TXNLAB_DSN", "postgresql://nobody@127.0.0.1:1/postgres")  # nothing may connect
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "ok.spec").write_text(SIMPLE)
    (tmp_path / "broken.spec").write_text("session s1\nstep s1a\nstep s1b { SELECT 1; }\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.spec").write_text(SIMPLE)
    (tmp_path / "a.spec").write_text(SIMPLE)
    args = {
        "missing": ["nowhere"], "empty": ["empty"], "not_spec": ["notes.txt"],
        "bad_expected": ["ok.spec", "--expected", "nowhere"], "unparsable": ["ok.spec", "broken.spec"],
        "same_name": ["a.spec", "other/a.spec"],
    }[problem]
    code, out, err = cli(*args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("txnlab: error: ") and expected_line in err


# --- running (needs the server) ----------------------------------------------------------


def test_a_spec_matching_its_expected_output_is_ok_and_exits_0(cli, oracle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = corpus(tmp_path, {"simple": SIMPLE})
    (root / "expected" / "simple.out").write_text(oracle(root / "specs" / "simple.spec"))
    code, out, err = cli(str(root))
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ok", "simple"] and lines[0].endswith(" ms")
    assert lines[1].startswith("1 specs: 1 ok, 0 failed, 0 not applicable")


def test_any_alternative_may_match_and_a_failure_is_diffed_against_the_closest(
    cli, oracle, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root = corpus(tmp_path, {"simple": SIMPLE, "other": SIMPLE})
    real = oracle(root / "specs" / "simple.spec")
    (root / "expected" / "simple.out").write_text("something else entirely\n")
    (root / "expected" / "simple_1.out").write_text(real)
    (root / "expected" / "other.out").write_text("nothing alike\n")
    (root / "expected" / "other_3.out").write_text(real.replace("step w2:", "step w9:"))
    code, out, err = cli(str(root), "--format", "json")
    assert code == 1, err
    document = json.loads(out)
    specs = {s["name"]: s for s in document["specs"]}
    assert specs["simple"]["status"] == "ok" and specs["simple"]["expected"].endswith("simple_1.out")
    assert specs["simple"]["diff"] is None
    failed = specs["other"]
    assert failed["status"] == "failed" and failed["expected"].endswith("other_3.out")
    assert "-step w9: UPDATE accounts SET balance = balance - 30 WHERE id = 1; <waiting ...>" in failed["diff"]
    assert "+step w2: UPDATE accounts SET balance = balance - 30 WHERE id = 1; <waiting ...>" in failed["diff"]
    assert document["summary"] == {"specs": 2, "ok": 1, "failed": 1, "not_applicable": 0}
    assert set(specs["simple"]) == {"name", "spec", "status", "duration_ms", "lane", "expected", "reason", "diff",
                                    "results"}

    code, text_out, _ = cli(str(root))
    assert code == 1
    assert [line.split()[0] for line in text_out.splitlines()[:2]] == ["FAILED", "ok"]  # given order: by name
    diff = text_out[text_out.index("\ndiff -U3 ") + 1:]
    unwritten = "other.out (txnlab's output, not written)"
    assert diff.startswith(f"diff -U3 {root / 'expected' / 'other_3.out'} {unwritten}\n")
    assert f"--- {root / 'expected' / 'other_3.out'}\n+++ {unwritten}\n@@ " in diff
    code, text_out, _ = cli(str(root), "--results", str(tmp_path / "out"))
    assert f"+++ {tmp_path / 'out' / 'other.out'}\n@@ " in text_out  # the diff names the file written


def test_results_are_written_where_asked_and_equal_what_was_compared(cli, oracle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = corpus(tmp_path, {"simple": SIMPLE})
    real = oracle(root / "specs" / "simple.spec")
    (root / "expected" / "simple.out").write_text(real)
    code, out, _ = cli(str(root / "specs" / "simple.spec"), "--results", str(tmp_path / "results"), "--format", "json")
    assert code == 0
    written = Path(json.loads(out)["specs"][0]["results"])
    assert written == tmp_path / "results" / "simple.out" and written.read_text() == real


def test_specs_the_server_cannot_run_are_not_applicable_and_do_not_fail_the_run(
    cli, tmp_path: Path, admin
) -> None:  # type: ignore[no-untyped-def]
    with admin.cursor() as cur:
        cur.execute("SHOW max_prepared_transactions")
        if cur.fetchone()[0] != "0":
            pytest.skip("this server allows prepared transactions")
    prepared = "session s1\nsetup { BEGIN; }\nstep p { PREPARE TRANSACTION 'x'; }\nstep c { COMMIT PREPARED 'x'; }\n"
    root = corpus(tmp_path, {"prepared": prepared, "unexpected": SIMPLE})
    (root / "expected" / "prepared.out").write_text("")
    code, out, _ = cli(str(root))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("not applicable  prepared ") and "max_prepared_transactions is 0" in lines[0]
    assert lines[1].startswith("not applicable  unexpected ") and "no expected output (unexpected.out)" in lines[1]
    assert lines[2].startswith("2 specs: 0 ok, 0 failed, 2 not applicable")


def test_a_spec_whose_setup_the_server_refuses_is_not_applicable_unless_its_output_expects_that(
    cli, oracle, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A setup failing with a server-side SQLSTATE (here 0A000, feature not supported) says
    nothing about the spec's concurrency: not applicable, with the server's words. When the
    expected file shows that very failure, the output matches and it is ok."""
    refused = "setup { SELECT count(*) FROM pg_class FOR UPDATE; }\nsession s1\nstep s1a { SELECT 1; }\n"
    root = corpus(tmp_path, {"refused": refused, "refused_expected": refused})
    (root / "expected" / "refused.out").write_text("Parsed test spec with 1 sessions\n")
    (root / "expected" / "refused_expected.out").write_text(oracle(root / "specs" / "refused_expected.spec"))
    code, out, _ = cli(str(root))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("not applicable  refused ")
    assert lines[0].endswith("its setup failed on this server: 0A000 FOR UPDATE is not allowed with aggregate functions")
    assert lines[1].split()[:2] == ["ok", "refused_expected"]


RENDEZVOUS = """\
# Waits (at most 30 s) until NEED specs run this step at once, each in a database of its own,
# then stays 2 s so that the others see it too; fails if they never meet.
setup { CREATE TABLE accounts (id int); CREATE TABLE need AS SELECT NEED AS n; }
teardown { DROP TABLE accounts, need; }
session s1
step meet {
  DO $$ BEGIN
    FOR i IN 1..600 LOOP
      IF (SELECT count(DISTINCT datname) FROM pg_stat_activity
          WHERE state = 'active' AND query LIKE '%rendezvous of lanes%') >= (SELECT n FROM need) THEN
        PERFORM pg_sleep(2);  -- stay in sight of the others, which look every 50 ms
        RETURN;
      END IF;
      PERFORM pg_sleep(0.05);
      PERFORM pg_stat_clear_snapshot();  -- pg_stat_activity is read once per transaction otherwise
    END LOOP;
    RAISE EXCEPTION 'the specs never ran at once in databases of their own';
  END $$; -- rendezvous of lanes
}
"""


def test_lanes_run_specs_at_once_in_databases_of_their_own(cli, oracle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Three specs create the same table and then wait for one another: they can only all meet
    if they run at the same time, each in a database of its own (pg_stat_activity sees all three
    databases at once). No clock is involved; the expected output is the real isolationtester's
    for the same spec needing only itself."""
    root = corpus(tmp_path / "suite", {f"meet{n}": RENDEZVOUS.replace("NEED", "3") for n in range(3)})
    alone = tmp_path / "alone.spec"
    alone.write_text(RENDEZVOUS.replace("NEED", "1"))
    real = oracle(alone)
    assert real.endswith("-- rendezvous of lanes\n\n")
    for n in range(3):
        (root / "expected" / f"meet{n}.out").write_text(real)
    code, out, err = cli(str(root), "--jobs", "3", "--format", "json")
    assert code == 0, out + err
    assert sorted(s["lane"] for s in json.loads(out)["specs"]) == [0, 1, 2]


def test_a_spec_that_ends_early_leaves_its_objects_to_no_other_spec(cli, oracle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """isolationtester skips the teardown after a failed session setup, so the table stays; in
    pg_isolation_regress's single database the next spec creating it would fail. Each spec's
    output must not depend on which lane ran what before it."""
    broken = "setup { CREATE TABLE accounts (id int); }\nteardown { DROP TABLE accounts; }\n" \
             "session s1\nsetup { SET no_such_setting = 1; }\n" + "".join(f"step s1{n} {{ SELECT 1; }}\n" for n in range(9))
    # nine steps: it starts first (heaviest first, see PlannedSpec.weight), the simple one after it in the same lane
    root = corpus(tmp_path, {"a_broken": broken, "b_simple": SIMPLE})
    for name in ("a_broken", "b_simple"):
        (root / "expected" / f"{name}.out").write_text(oracle(root / "specs" / f"{name}.spec"))
    assert "setup of session s1 failed" in (root / "expected" / "a_broken.out").read_text()
    code, out, err = cli(str(root), "--jobs", "1")
    assert code == 0, out + err
    assert [line.split()[:2] for line in out.splitlines()[:2]] == [["ok", "a_broken"], ["ok", "b_simple"]]


def test_an_unreachable_server_is_one_line_and_exit_3(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    root = corpus(tmp_path, {"simple": SIMPLE})
    (root / "expected" / "simple.out").write_text("")
    code, out, err = cli(str(root), "--dsn", "postgresql://nobody@127.0.0.1:1/postgres")
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and err.startswith("txnlab: error: ")


def test_ctrl_c_mid_suite_exits_130_and_leaves_no_database_session_or_role(tmp_path: Path, admin) -> None:  # type: ignore[no-untyped-def]
    hanging = """\
        setup { CREATE ROLE regress_txnlab_specs_ctrl_c; }
        teardown { DROP ROLE regress_txnlab_specs_ctrl_c; }
        session s1
        step sleepy { SELECT pg_sleep(30); }
        session s2
        step other { SELECT 1; }
        permutation sleepy other
    """
    root = corpus(tmp_path, {f"hanging{n}": hanging.replace("regress_", f"regress_{n}_") for n in range(3)})
    for n in range(3):
        (root / "expected" / f"hanging{n}.out").write_text("")
    # The test server as this process chose it: embedded (which txnlab cleans up fully) unless TXNLAB_DSN is set.
    process = subprocess.Popen([sys.executable, "-m", "txnlab", "specs", str(root), "--jobs", "3",
                                "--step-timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every lane has its sleeping step running on the server
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30);'")
            if cur.fetchone()[0] == 3:
                break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the sleeping steps never started")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=15)
    with admin.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname ~ '^regress_[0-9]_txnlab_specs_ctrl_c$'")
        roles = [r[0] for r in cur.fetchall()]
        for role in roles:  # a server txnlab did not start: they are reported, never dropped (see footprint)
            cur.execute(f"DROP ROLE {role}")
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert leftovers(admin, process.pid) == ([], [])
    if os.environ.get("TXNLAB_DSN"):
        assert len(roles) == 3 and err.count("txnlab: warning: role ") == 3
        assert err.splitlines()[-1].endswith("but 3 change(s) to the server made during the run remain (see the warnings above)")
    else:
        assert roles == []
        assert err.splitlines()[-1] == "txnlab: interrupted by SIGINT (Ctrl-C); nothing was left behind"
