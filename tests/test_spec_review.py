"""Failure paths of .spec runs found in review: each a spec a user can write, each must end
in bounded time with one line or an honest output, never a hang or a runaway."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from isolation_tools import run_spec_text

from txnlab.errors import ScenarioError, ServerError
from txnlab.levels import Level
from txnlab.runner.lab import Lab, open_lab
from txnlab.scenario.spec_source import parse_spec


@pytest.mark.parametrize("block", ["step", "setup"])
def test_copy_from_stdin_ends_with_the_servers_error_instead_of_hanging(spec_lab: Lab, block: str) -> None:
    copy = "COPY t FROM STDIN;"
    body = (f"setup {{ CREATE TABLE t (a int); }}\nsetup {{ {copy} }}\nsession s1\nstep b {{ SELECT 1; }}\n"
            if block == "setup" else
            f"setup {{ CREATE TABLE t (a int); }}\nsession s1\nstep a {{ {copy} }}\nstep b {{ SELECT 1; }}\n")
    started = time.monotonic()
    output = run_spec_text(spec_lab, body)[0]
    assert time.monotonic() - started < 5  # well under the step timeout: nothing waited
    assert "ERROR:  COPY from stdin failed: a .spec cannot send COPY data" in output
    if block == "step":
        assert "step b: SELECT 1;\n?column?\n--------\n       1\n(1 row)\n" in output  # the session is usable after


def test_copy_to_stdout_step_completes_and_the_next_step_runs(spec_lab: Lab) -> None:
    started = time.monotonic()
    output = run_spec_text(spec_lab, "session s1\nstep a { COPY (SELECT 1) TO STDOUT; }\nstep b { SELECT 2; }\n")[0]
    assert time.monotonic() - started < 5
    assert "step a: COPY (SELECT 1) TO STDOUT;\nstep b: SELECT 2;\n" in output


def test_a_spec_with_too_many_interleavings_is_refused_at_parse_time_not_enumerated() -> None:
    sessions = "".join(
        f"session s{s}\n" + "".join(f"step s{s}k{k} {{ SELECT {k}; }}\n" for k in range(4)) for s in range(6)
    )
    started = time.monotonic()
    with pytest.raises(ScenarioError) as refused:
        parse_spec(sessions, "huge.spec")
    assert time.monotonic() - started < 1
    message = str(refused.value)
    assert message.startswith("huge.spec:1: ")
    assert "3246670537110000 interleavings" in message and "\n" not in message


def test_a_spec_with_listed_permutations_is_not_limited_by_its_interleaving_count() -> None:
    sessions = "".join(
        f"session s{s}\n" + "".join(f"step s{s}k{k} {{ SELECT {k}; }}\n" for k in range(4)) for s in range(6)
    )
    scenario = parse_spec(sessions + "permutation s0k0 s1k0\n", "huge.spec")
    assert scenario.permutations == (("s0k0", "s1k0"),)


def test_results_folder_given_as_an_empty_string_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "specs" / "one.spec"
    spec.parent.mkdir()
    spec.write_text("session s1\nstep a { SELECT 1; }\n")
    code, out, err = cli("specs", str(spec), "--results", "")
    assert code == 2
    assert err.startswith("txnlab: error: --results: ") and err.count("\n") == 1


def test_a_lost_control_connection_is_named_once_in_the_one_line_error(spec_lab: Lab) -> None:
    """A step ends the control connection (the one isolationtester cannot go on without): the run
    stops with one line that names it once ("the control connection", never "session control
    connection's connection"). A setup block that ends its own connection is a failed setup instead,
    as isolationtester prints it (tests/test_spec_session_end.py)."""
    scenario = parse_spec(
        "teardown { SELECT 1; }\nsession s1\nstep a { SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE '%/control connection'; }\n"
        "step b { SELECT 2; }\n", "inline.spec")
    with pytest.raises(ServerError) as lost:
        spec_lab.run_permutations(scenario, Level.READ_COMMITTED)
    assert str(lost.value).startswith("the control connection was lost ")
    assert "\n" not in str(lost.value) and "session control" not in str(lost.value)


def test_a_step_past_the_step_timeout_is_cancelled_and_its_permutation_goes_on(server_dsn: str) -> None:
    with open_lab(server_dsn, step_timeout=0.5) as lab:
        output = run_spec_text(lab, "session s1\nstep a { SELECT pg_sleep(3); }\nstep b { SELECT 2 AS b; }\n")[0]
    assert "isolationtester: canceling step a after 0 seconds\nstep a: SELECT pg_sleep(3);\n" \
           "ERROR:  canceling statement due to user request\nstep b: SELECT 2 AS b;\n" in output


def test_more_jobs_than_the_servers_connections_allow_run_in_fewer_lanes(cli, tmp_path: Path, admin) -> None:  # type: ignore[no-untyped-def]
    """--jobs 64 asks for 64 lanes of (lab, monitor, control, sessions) connections; on a
    server with max_connections 100 that used to end the whole run with 'too many clients'
    (exit 3) and no result."""
    with admin.cursor() as cur:
        cur.execute("SELECT current_setting('max_connections')::int")
        max_connections = cur.fetchone()[0]
    specs = tmp_path / "specs"
    expected = tmp_path / "expected"
    specs.mkdir()
    expected.mkdir()
    # Each spec lasts long enough that every lane holds its connections at once.
    text = "session s1\nstep a { SELECT pg_sleep(1.5); }\nsession s2\nstep b { SELECT 1; }\npermutation a b\n"
    count = max_connections // 4 + 2  # more lanes than the server can hold: each needs 7 connections
    for n in range(count):
        (specs / f"s{n}.spec").write_text(text)
    code, out, err = cli("run", str(specs / "s0.spec"), "--format", "isolationtester")
    assert code == 0
    for n in range(count):
        (expected / f"s{n}.out").write_text(out)
    code, out, err = cli("specs", str(specs), "--jobs", "64", "--format", "json")
    assert (code, err) == (0, ""), out  # a mismatch names its spec and its diff in the JSON
    document = json.loads(out)
    assert document["summary"]["ok"] == count
    lanes = {spec["lane"] for spec in document["specs"]}
    assert len(lanes) <= document["jobs"] < 64 and document["jobs"] * 7 < max_connections


def test_the_lane_count_reported_is_the_lanes_that_ran(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    specs = tmp_path / "specs"
    specs.mkdir()
    (tmp_path / "expected").mkdir()
    for name in ("one", "two"):
        (specs / f"{name}.spec").write_text("session s1\nstep a { SELECT 1; }\n")
    code, out, _ = cli("run", str(specs / "one.spec"), "--format", "isolationtester")
    (tmp_path / "expected" / "one.out").write_text(out)  # two.spec has none: not applicable, not run
    code, out, err = cli("specs", str(specs), "--jobs", "4", "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["jobs"] == 1
    code, out, err = cli("specs", str(specs), "--jobs", "4")
    assert out.splitlines()[-1].endswith(", 1 lane)")


def test_a_doubled_quote_inside_a_quoted_name_is_one_quote_as_isolationtester_reads_it() -> None:
    # specscanner.l: two quotes inside a quoted identifier add one (the real isolationtester
    # 18 parses the session line below; txnlab refused it as a syntax error).
    scenario = parse_spec('session "s ""1"""\nstep "a""x" { SELECT 1; }\npermutation "a""x"\n', "q.spec")
    assert [s.name for s in scenario.sessions] == ['s "1"']
    assert scenario.permutations == (('a"x',),)
    with pytest.raises(ScenarioError, match="unterminated quoted name"):
        parse_spec('session "s ""1\nstep a { SELECT 1; }\n', "q.spec")
