"""Passwords are never printed: whatever form the DSN takes, however it reaches txnlab
(--dsn, $TXNLAB_DSN, $DATABASE_URL, $PGPASSWORD), whichever way connecting fails."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg2.extensions
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsn_forms import FORMS, RUN, SOURCES, passwords, run_txnlab
from txnlab.redaction import Redactor, describe_dsn, secrets_in_dsn

UNREACHABLE = {"host": "127.0.0.1", "port": "1", "user": "u"}

ISSUE_DSNS = {  # issue 8, item 2: each was echoed with its password
    "unencoded %": "postgresql://u:S3cretPw%zz@127.0.0.1:1/db",
    "unencoded @": "postgresql://u:S3cretPw@Hunter2x@127.0.0.1:1/db",
    "unclosed [": "postgresql://u:S3cretPw@[::1/db",
    "sslpassword": "host=127.0.0.1 port=1 user=u password=S3cretPw sslpassword=Hunter2x",
}


@pytest.fixture(scope="module")
def bad_role(server_dsn: str) -> dict[str, str]:
    """The test server, with a role that does not exist: the server refuses the credentials."""
    params = psycopg2.extensions.parse_dsn(server_dsn)
    return {"host": params.get("host") or "localhost", "port": params.get("port") or "5432", "user": "txnlab_no_such_role"}


@pytest.mark.parametrize("case", ISSUE_DSNS)
@pytest.mark.parametrize("source", SOURCES)
def test_the_issues_dsns_are_reported_without_their_passwords(case: str, source: str) -> None:
    code, output = run_txnlab(RUN, source, ISSUE_DSNS[case])
    assert code in (2, 3) and output.startswith("txnlab: error: ") and output.count("\n") == 1
    assert "S3cret" not in output and "Hunter2" not in output


def test_a_password_is_never_printed_by_a_real_txnlab_process(bad_role: dict[str, str]) -> None:
    """The same promise end to end, bytes on the terminal included: stdout and stderr of a child."""
    env = {**os.environ, "PGPASSWORD": "pwFromTheEnvironment", "DATABASE_URL": ISSUE_DSNS["unencoded @"]}
    env.pop("TXNLAB_DSN", None)
    for dsn in [*ISSUE_DSNS.values(), FORMS["uri, password unencoded"](bad_role, "pwA@pwB%zz")]:
        done = subprocess.run(
            [sys.executable, "-m", "txnlab", *RUN, "--dsn", dsn], env=env, capture_output=True, timeout=30
        )
        output = done.stdout + done.stderr
        assert done.returncode in (2, 3) and output.count(b"\n") == 1, output
        assert not any(s in output for s in (b"S3cret", b"Hunter2", b"pwA", b"pwB", b"pwFromTheEnvironment"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=passwords(), form=st.sampled_from(sorted(FORMS)), source=st.sampled_from(SOURCES))
def test_no_piece_of_a_generated_password_is_printed_when_the_server_is_unreachable(
    password: tuple[str, list[str]], form: str, source: str
) -> None:
    text, words = password
    code, output = run_txnlab(RUN, source, FORMS[form](UNREACHABLE, text))
    assert code in (2, 3) and output.count("\n") == 1, output
    assert not [word for word in words if word in output], output


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=passwords(), form=st.sampled_from(sorted(FORMS)), source=st.sampled_from(SOURCES))
def test_no_piece_of_a_generated_password_is_printed_when_the_server_refuses_the_credentials(
    bad_role: dict[str, str], password: tuple[str, list[str]], form: str, source: str
) -> None:
    text, words = password
    code, output = run_txnlab(RUN, source, FORMS[form](bad_role, text), {"PGPASSWORD": words[0]})
    assert code in (2, 3) and output.count("\n") == 1, output
    assert not [word for word in words if word in output], output


def test_a_dsn_is_described_by_host_port_user_and_database_only() -> None:
    dsn = "host=h port=5 user=u dbname=d password=p1 sslpassword=p2 sslkey=/k application_name=a"
    assert describe_dsn(dsn) == "host=h port=5 user=u dbname=d"
    assert describe_dsn("postgresql://u:pw@[::1/db") == "an unparsable DSN"


def test_the_password_libpq_misreads_is_found_as_the_person_meant_it() -> None:
    """libpq ends the userinfo at the first `@`; the person meant the last one."""
    found = secrets_in_dsn("postgresql://u:pwOne@pwTwo@host/db")
    assert {"pwOne", "pwOne@pwTwo", "pwTwo"} <= found
    assert Redactor(found)('could not translate host name "pwTwo@host"') == 'could not translate host name "***@host"'


def test_a_dsn_holding_bytes_that_are_not_utf8_is_one_line_and_exit_2() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TXNLAB_DSN", "DATABASE_URL")}
    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"txnlab", *(a.encode() for a in RUN), b"--dsn", b"host=x password=pwSe\xffcret"],
        env=env, capture_output=True, timeout=30,
    )
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr == b"txnlab: error: the DSN from --dsn is not valid: it holds bytes that are not UTF-8 text\n"


def test_a_dsn_holding_a_newline_is_reported_on_one_line() -> None:
    code, output = run_txnlab(RUN, "--dsn", "postgresql://u@127.0.0.1:1/a\nb")
    assert code == 3 and output.count("\n") == 1 and "dbname=a\\nb" in output


def test_a_password_equal_to_the_user_name_does_not_mask_txnlabs_own_words() -> None:
    """The README's docker example, txnlab:txnlab: the line still starts `txnlab: error:`."""
    code, output = run_txnlab(RUN, "--dsn", "postgresql://txnlab:txnlab@127.0.0.1:1/postgres")
    assert code == 3 and output.startswith("txnlab: error: cannot connect to PostgreSQL (host=127.0.0.1 port=1 user=txnlab")


def test_a_pgpassword_equal_to_the_user_name_does_not_mask_txnlabs_own_words() -> None:
    code, output = run_txnlab(RUN, "TXNLAB_DSN", "postgresql://txnlab@127.0.0.1:1/postgres", {"PGPASSWORD": "txnlab"})
    assert code == 3 and output.startswith("txnlab: error: cannot connect to PostgreSQL (host=127.0.0.1 port=1 user=txnlab")


def test_standard_output_shows_values_exactly_even_where_they_equal_a_short_password(server_dsn: str) -> None:
    """Masking must never falsify what the server returned: a balance of 100 stays 100 on
    standard output although the DSN's (unused) password is "100"; error lines still mask it."""
    dsn = psycopg2.extensions.make_dsn(server_dsn, password="100")
    done = subprocess.run(
        [sys.executable, "-m", "txnlab", "run", "atm-lost-update", "--level", "rc", "--dsn", dsn],
        capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "balance = 100" in done.stdout and "***" not in done.stdout


@pytest.mark.parametrize("dsn", [
    "postgresql://alice:balances/accounts@127.0.0.1:1/db",  # pieces of a password libpq misreads
    "postgresql://alice:pwSecret1@accounts/db?application_name=a@b",  # a guess that spans the host
])
def test_standard_output_never_masks_pieces_of_a_password_or_guesses_at_one(dsn: str) -> None:
    """`show` prints the scenario's SQL, which names the table `accounts`, and no DSN: stdout
    must show it as written, although "accounts" (here a table, a host name) is a piece of
    what a misread DSN might hold; only whole passwords are masked there."""
    env = {**os.environ, "TXNLAB_DSN": dsn, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "txnlab", "show", "atm-lost-update"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "FROM accounts WHERE" in done.stdout and "***" not in done.stdout
