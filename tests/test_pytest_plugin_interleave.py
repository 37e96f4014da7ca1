"""The plugin's `txnlab_interleave` fixture: a project's own psycopg2 functions, each on a
session of its own, paused before or after a named statement, with the server's wait
detection; the suite has the plugin, so these run in-process on the suite's server."""

from __future__ import annotations

import re

import psycopg2.errors
import psycopg2.extensions
import pytest

from txnlab.pytest_plugin import InterleaveError, after, before
from txnlab.timeline import Outcome

pytest_plugins = ["pytester"]

ACCOUNTS = ("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0));"
            "INSERT INTO accounts VALUES (1, 100), (2, 100);")
BALANCES = "SELECT id, balance FROM accounts ORDER BY id"
DEBIT = "UPDATE accounts SET balance = balance - %s WHERE id = %s"
CREDIT = "UPDATE accounts SET balance = balance + %s WHERE id = %s"
MONEY_IS_CONSERVED = {"money_is_conserved": "SELECT sum(balance) = 200 FROM accounts"}


def transfer(conn, src: int, dst: int, amount: int) -> int:  # type: ignore[no-untyped-def]
    """The application's transfer: debit, credit, commit (psycopg2's `with conn:`)."""
    with conn:
        with conn.cursor() as cur:
            cur.execute(DEBIT, (amount, src))
            cur.execute(CREDIT, (amount, dst))
    return amount


def noting_cleanup(cleaned_up: list[int]):  # type: ignore[no-untyped-def]
    """`transfer` that appends its amount to `cleaned_up` however it ends (its `finally:` ran)."""
    def transfer_noting_cleanup(conn, src, dst, amount):  # type: ignore[no-untyped-def]
        try:
            return transfer(conn, src, dst, amount)
        finally:
            cleaned_up.append(amount)
    return transfer_noting_cleanup


def withdraw(conn, account: int, amount: int) -> int:  # type: ignore[no-untyped-def]
    """The naive read-then-write withdrawal: the new balance computed in Python."""
    with conn:
        with conn.cursor() as cur:
            cur.execute("SELECT balance FROM accounts WHERE id = %s", (account,))
            (balance,) = cur.fetchone()
            cur.execute("UPDATE accounts SET balance = %s WHERE id = %s", (balance - amount, account))
    return balance - amount


def test_a_call_paused_before_commit_holds_its_row_locks_until_resumed(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        first = moves.start("s1", transfer, 1, 2, 10, until=before("COMMIT"))
        assert (first.state, first.paused_at) == ("paused", before("COMMIT"))
        second = moves.start("s2", transfer, 1, 2, 5)
        assert second.state == "running"
        assert second.waited_for == ("s1",)
        moves.resume("s1")
        moves.finish()
        assert (first.state, first.result) == ("returned", 10)
        assert (second.state, second.result) == ("returned", 5)
        assert moves.query(BALANCES) == [(1, 85), (2, 115)]


def test_a_call_paused_after_a_statement_has_sent_it_but_committed_nothing(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        call = moves.start("s1", transfer, 1, 2, 10, until=after("update  ACCOUNTS set balance = balance -"))
        assert call.state == "paused"
        assert call.statements == [DEBIT]
        assert moves.query(BALANCES) == [(1, 100), (2, 100)]
        moves.resume("s1")
        assert call.statements == [DEBIT, CREDIT, "COMMIT"]
        assert moves.query(BALANCES) == [(1, 90), (2, 110)]


def test_the_statements_of_a_call_paused_before_one_are_those_it_sent(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    """Call.statements are "the statements it sent": paused before the credit, it sent the debit only."""
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        call = moves.start("s1", transfer, 1, 2, 10, until=before("UPDATE", nth=2))
        assert call.statements == [DEBIT]


@pytest.mark.parametrize("point", [after("UPDATE", nth=2), after(re.compile(r"balance \+ %s"))],
                         ids=["nth=2", "regex"])
def test_a_call_pauses_at_the_nth_matching_statement_or_a_regex_match(txnlab_interleave, point) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        call = moves.start("s1", transfer, 1, 2, 10, until=point)
        assert (call.state, call.paused_at) == ("paused", point)
        assert call.statements == [DEBIT, CREDIT]
        # Both rows are locked by s1's open transaction: a reader's FOR UPDATE NOWAIT fails.
        locked = moves.start("s2", lambda conn: conn.cursor().execute(f"{BALANCES} FOR UPDATE NOWAIT"))
        assert (locked.state, locked.error.pgcode) == ("raised", "55P03")


def test_a_point_the_function_never_reaches_is_an_error_naming_it_and_what_was_sent(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        with pytest.raises(InterleaveError) as raised:
            moves.start("s1", transfer, 1, 2, 10, until=before("DELETE FROM accounts"))
    assert str(raised.value) == (
        "transfer(conn, 1, 2, 10) returned without reaching before('DELETE FROM accounts'); "
        f"it sent: {DEBIT}; {CREDIT}; COMMIT"
    )


def test_resume_needs_a_paused_call_and_start_refuses_a_paused_session(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS, sessions=("s1", "s2", "s3")) as moves:
        moves.start("s1", transfer, 1, 2, 10)
        with pytest.raises(InterleaveError, match=r"^cannot resume session s1: it is not paused: "
                                                  r"transfer\(conn, 1, 2, 10\) \(it returned 10\)$"):
            moves.resume("s1")
        with pytest.raises(InterleaveError, match=r"^cannot resume session s2: it has run no call$"):
            moves.resume("s2")
        moves.start("s3", transfer, 2, 1, 5, until=before("COMMIT"))
        with pytest.raises(InterleaveError, match=r"^session s3 is paused in transfer\(conn, 2, 1, 5\) at "
                                                  r"before\('COMMIT'\); resume it before starting another"):
            moves.start("s3", transfer, 1, 2, 1)


def test_at_repeatable_read_the_waiting_call_fails_with_a_serialization_failure(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS, level="repeatable read") as moves:
        first = moves.start("s1", transfer, 1, 2, 10, until=before("COMMIT"))
        second = moves.start("s2", transfer, 1, 2, 5)
        assert second.waited_for == ("s1",)
        moves.resume("s1")
        moves.finish()
        assert first.state == "returned"
        assert second.state == "raised"
        assert isinstance(second.error, psycopg2.errors.SerializationFailure)
        assert second.error.pgcode == "40001"
        assert moves.query(BALANCES) == [(1, 90), (2, 110)]


def test_a_deadlock_between_opposite_transfers_kills_exactly_one(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS, invariants=MONEY_IS_CONSERVED) as moves:
        one = moves.start("s1", transfer, 1, 2, 10, until=after("UPDATE"))
        other = moves.start("s2", transfer, 2, 1, 20, until=after("UPDATE"))
        moves.resume("s1")
        moves.resume("s2")
        moves.finish()
    outcomes = sorted((call.state, getattr(call.error, "pgcode", None)) for call in (one, other))
    assert outcomes == [("raised", "40P01"), ("returned", None)]
    assert any(event.outcome is Outcome.BLOCKED for event in moves.timeline.events)
    assert moves.timeline.invariants == {"money_is_conserved": True}


@pytest.mark.parametrize("point", [after("UPDATE", nth=2), before("COMMIT")], ids=["after-credit", "before-commit"])
def test_a_call_still_paused_at_the_end_is_unwound_and_its_writes_rolled_back(txnlab_interleave, point) -> None:  # type: ignore[no-untyped-def]
    cleaned_up: list[int] = []
    transfer_noting_cleanup = noting_cleanup(cleaned_up)

    with txnlab_interleave(setup=ACCOUNTS, final=BALANCES,
                           invariants={"only_the_second_applied": "SELECT array_agg(balance ORDER BY id) = "
                                                                  "'{95,105}' FROM accounts"}) as moves:
        first = moves.start("s1", transfer_noting_cleanup, 1, 2, 10, until=point)
        second = moves.start("s2", transfer, 1, 2, 5)
        assert second.waited_for == ("s1",)
    assert cleaned_up == [10]
    assert first.state == "ended"
    assert (second.state, second.result, second.error) == ("returned", 5, None)
    assert moves.timeline.ended_early is None
    assert moves.timeline.invariants == {"only_the_second_applied": True}
    assert [event.rows for event in moves.timeline.final] == [(("1", "95"), ("2", "105"))]


def test_invariants_and_final_are_the_servers_answers_read_after_the_block(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    invariants = {"both_withdrawals_counted": "SELECT balance = 50 FROM accounts WHERE id = 1",
                  "no_overdraft": "SELECT bool_and(balance >= 0) FROM accounts"}
    with txnlab_interleave(setup=ACCOUNTS, invariants=invariants, final="SELECT balance FROM accounts WHERE id = 1") as moves:
        first = moves.start("s1", withdraw, 1, 30, until=after("SELECT"))
        moves.start("s2", withdraw, 1, 20)
        moves.resume("s1")
        assert moves.timeline is None
    assert first.result == 70  # computed from its stale read: s2's withdrawal is lost
    assert moves.timeline.invariants == {"both_withdrawals_counted": False, "no_overdraft": True}
    assert [event.rows for event in moves.timeline.final] == [(("70",),)]


def test_bad_input_is_refused_in_one_line(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        with pytest.raises(InterleaveError, match=r"^no session 's3': this interleaving has s1, s2$"):
            moves.start("s3", transfer, 1, 2, 10)
    # At the block's start: the test fails in one line, not with a traceback into txnlab.
    with pytest.raises(pytest.fail.Exception, match=r"^txnlab: session name 'S 1' must be lower-case") as failed:
        with txnlab_interleave(sessions=["S 1"]):
            pass
    assert not failed.value.pytrace
    with pytest.raises(pytest.fail.Exception, match=r"^txnlab: unknown isolation level 'nonsense'"):
        with txnlab_interleave(level="nonsense"):
            pass
    with pytest.raises(pytest.fail.Exception, match=r'^txnlab: .*setup SQL.*relation "nowhere" does not exist'):
        with txnlab_interleave(setup="INSERT INTO nowhere VALUES (1)"):
            pass
    with pytest.raises(InterleaveError, match=r"^before\(\): the statement to pause at is empty$"):
        before("")


FAILING_TEST = '''\
from txnlab.pytest_plugin import before


def transfer(conn, src, dst, amount):
    with conn:
        with conn.cursor() as cur:
            cur.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, src))
            cur.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, dst))


def test_second_transfer_does_not_wait(txnlab_interleave):
    with txnlab_interleave(setup="CREATE TABLE accounts (id int PRIMARY KEY, balance int);"
                                 "INSERT INTO accounts VALUES (1, 100), (2, 100)",
                           sessions=("teller-a", "teller-b")) as moves:
        moves.start("teller-a", transfer, 1, 2, 10, until=before("COMMIT"))
        second = moves.start("teller-b", transfer, 1, 2, 5)
        assert not second.waited
'''


def test_a_test_failing_inside_the_block_reports_the_timeline_so_far(pytester: pytest.Pytester, server_dsn: str) -> None:
    pytester.makepyfile(test_bank=FAILING_TEST)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--txnlab-dsn={server_dsn}", timeout=120)

    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert re.search(r"^-+ txnlab timeline -+$", output, re.MULTILINE)
    assert "the interleaving did not finish; its steps up to the failure:" in output
    assert "no verdict" not in output  # an interleaving never had expectations: its test asserts
    assert re.search(r"│\s*#\s*│\s*teller-a\s*│\s*teller-b\s*│", output)
    assert re.search(r"│ transfer\(conn, 1, 2, 10\) until\s", output)


def test_each_interleaving_starts_with_no_transaction_open_in_a_fresh_schema(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    def session_state(conn):  # type: ignore[no-untyped-def]
        """psycopg2's status before any statement, then the server's schema, whether the first
        interleaving's table is visible, and whether this transaction is new (no xid yet)."""
        status = conn.info.transaction_status
        with conn.cursor() as cur:
            cur.execute("SELECT current_schema(), to_regclass('first_table') IS NOT NULL, "
                        "pg_current_xact_id_if_assigned() IS NULL")
            return status, *cur.fetchone()

    with txnlab_interleave(setup="CREATE TABLE first_table (n int)", sessions=("s1",)) as moves:
        opening = moves.start("s1", session_state)
        moves.start("s1", lambda conn: conn.cursor().execute("INSERT INTO first_table VALUES (1)"))
        # s1 is left in the transaction that INSERT opened.
    with txnlab_interleave(setup="CREATE TABLE second_table (n int)", sessions=("s1",)) as moves:
        second = moves.start("s1", session_state)
    idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
    first_schema = opening.result[1]
    assert opening.result == (idle, first_schema, True, True)
    assert second.result[0] == idle
    assert second.result[1] != first_schema
    assert second.result[2:] == (False, True)


@pytest.mark.parametrize("outcome", [pytest.fail.Exception, pytest.skip.Exception], ids=["fail", "skip"])
def test_a_paused_call_cleans_up_when_pytest_ends_the_test_inside_the_block(txnlab_interleave, outcome) -> None:  # type: ignore[no-untyped-def]
    """pytest.fail() and pytest.skip() inside the block are the test's own end too (BaseExceptions)."""
    cleaned_up: list[int] = []
    transfer_noting_cleanup = noting_cleanup(cleaned_up)

    with pytest.raises(outcome):
        with txnlab_interleave(setup=ACCOUNTS) as moves:
            first = moves.start("s1", transfer_noting_cleanup, 1, 2, 10, until=after("UPDATE"))
            raise outcome("the test's own end")
    assert cleaned_up == [10]
    assert first.state == "ended"


def test_going_on_with_a_session_that_waits_for_a_paused_call_is_refused_at_once(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    """Waiting for it could only end by the step timeout: the paused call ends when the test resumes it."""
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        moves.start("s1", transfer, 1, 2, 10, until=before("COMMIT"))
        second = moves.start("s2", transfer, 1, 2, 5)
        assert second.waiting_for == ("s1",)
        with pytest.raises(InterleaveError, match=r"session s2 is waiting for s1, paused in transfer\(conn, 1, 2, 10\): resume s1 first"):
            moves.resume("s2")
        with pytest.raises(InterleaveError, match="session s2 is waiting for s1"):
            moves.start("s2", transfer, 2, 1, 1)
        moves.resume("s1")
        moves.finish()
        assert (second.state, second.waiting_for, second.waited_for) == ("returned", (), ("s1",))


def test_a_call_that_outlives_the_step_timeout_ends_the_run_with_an_error_saying_so(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    def sleeps(conn) -> None:  # type: ignore[no-untyped-def]
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(30)")

    with pytest.raises(pytest.fail.Exception, match="^txnlab: the run ended early"):  # its end says so too
        with txnlab_interleave(setup=ACCOUNTS) as moves:
            with pytest.raises(InterleaveError, match=r"the run ended early: step s1-1 \(s1\) did not finish "
                                                      r"within 5 s; txnlab cancelled its statement, if it was in one"):
                moves.start("s1", sleeps)
            with pytest.raises(InterleaveError, match="the run ended early"):  # not silently ignored afterwards
                moves.start("s2", transfer, 1, 2, 5)


def test_an_exception_that_is_not_the_servers_answer_is_raised_again_naming_the_call(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    def buggy(conn, account) -> None:  # type: ignore[no-untyped-def]
        with conn.cursor() as cur:
            cur.execute(DEBIT, (1, account))
        1 / 0  # noqa: B018 - the application's bug

    with txnlab_interleave(setup=ACCOUNTS) as moves:
        with pytest.raises(ZeroDivisionError) as raised:
            moves.start("s1", buggy, 1, until=before("COMMIT"))  # it raises before its point
        assert raised.value.__notes__ == ["(raised by test_an_exception_that_is_not_the_servers_answer_is_raised_"
                                          "again_naming_the_call.<locals>.buggy(conn, 1) on session s1; txnlab_interleave)"]


def test_a_waiting_calls_failure_is_raised_by_the_move_that_sees_it_end(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    def debit_then_fail(conn, amount) -> None:  # type: ignore[no-untyped-def]
        with conn:
            with conn.cursor() as cur:
                cur.execute(DEBIT, (amount, 1))
            raise LookupError("no such customer")

    with txnlab_interleave(setup=ACCOUNTS) as moves:
        moves.start("s1", transfer, 1, 2, 10, until=before("COMMIT"))
        second = moves.start("s2", debit_then_fail, 5)
        assert second.state == "running"
        with pytest.raises(LookupError, match="no such customer"):
            moves.resume("s1")  # s1 commits; s2's wait ends and its function raises
        assert second.state == "raised"
        moves.finish()  # raised once: the test has heard of it


def test_a_call_that_waits_and_then_returns_without_reaching_its_point_is_an_error(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        moves.start("s1", transfer, 1, 2, 10, until=before("COMMIT"))
        moves.start("s2", transfer, 1, 2, 5, until=before("COMMMIT"))
        with pytest.raises(InterleaveError, match=r"transfer\(conn, 1, 2, 5\) returned without reaching "
                                                  r"before\('COMMMIT'\); it sent: "):
            moves.resume("s1")


def test_resuming_up_to_after_the_statement_it_was_paused_before_stops_right_after_it(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        call = moves.start("s1", transfer, 1, 2, 10, until=before("UPDATE accounts SET balance = balance -"))
        assert call.statements == []
        moves.resume("s1", until=after("UPDATE accounts SET balance = balance -"))
        assert (call.state, call.statements) == ("paused", [DEBIT])


def test_points_match_whole_words_and_show_a_regex_as_written() -> None:
    assert before("UPDATE accounts").matches("update  accounts SET balance = 0")
    assert not before("UPDATE accounts").matches("UPDATE accounts_log SET n = 0")
    assert not before("UPDATE account").matches("UPDATE accounts SET balance = 0")
    assert str(before(re.compile(r"count\(\*\)"))) == r"before(re.compile(r'count\(\*\)'))"
    assert str(after("UPDATE", nth=2)) == "after('UPDATE', nth=2)"


def test_with_conn_behaves_as_psycopg2s_own_even_on_an_autocommit_connection(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    def autocommit_transfer(conn, amount) -> int:  # type: ignore[no-untyped-def]
        conn.autocommit = True
        with conn:  # psycopg2 2.9: a transaction even in autocommit mode
            transfer_body(conn, amount)
        with conn.cursor() as cur:
            cur.execute("SELECT balance FROM accounts WHERE id = 1")
            return next(cur)[0]

    def transfer_body(conn, amount) -> None:  # type: ignore[no-untyped-def]
        with conn.cursor() as cur:
            cur.execute(DEBIT, (amount, 1))
            cur.execute(CREDIT, (amount, 2))

    def reentering(conn) -> None:  # type: ignore[no-untyped-def]
        with conn:
            with conn:
                pass

    with txnlab_interleave(setup=ACCOUNTS) as moves:
        call = moves.start("s1", autocommit_transfer, 10, until=after("UPDATE", nth=2))
        assert moves.query(BALANCES) == [(1, 100), (2, 100)]  # one transaction, not yet committed
        moves.resume("s1")
        assert (call.state, call.result) == ("returned", 90)
        nested = moves.start("s2", reentering)
        assert nested.state == "raised" and isinstance(nested.error, psycopg2.ProgrammingError)
        assert "cannot be re-entered" in str(nested.error)


def test_a_call_ended_inside_with_conn_leaves_its_connection_usable_by_the_next_interleaving(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        moves.start("s1", transfer, 1, 2, 10, until=before("COMMIT"))  # paused inside psycopg2's with block
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        again = moves.start("s1", transfer, 1, 2, 10)
        assert (again.state, again.error) == ("returned", None)
        assert moves.query(BALANCES) == [(1, 90), (2, 110)]


def test_finish_and_sql_refuse_at_once_to_wait_for_a_paused_call(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        moves.start("s1", transfer, 1, 2, 10, until=before("COMMIT"))
        moves.start("s2", transfer, 1, 2, 5)
        with pytest.raises(InterleaveError, match="session s2 is waiting for s1"):
            moves.finish()
        with pytest.raises(InterleaveError, match="session s2 is waiting for s1"):
            moves.sql("s2", "SELECT 1")


def test_an_interleaving_inside_another_fails_in_one_line(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        moves.start("s1", transfer, 1, 2, 10, until=before("COMMIT"))
        with pytest.raises(pytest.fail.Exception, match="^txnlab: the lab is in the middle of a run of test_an_"
                                                        "interleaving_inside_another_fails_in_one_line; a run "
                                                        "cannot start inside another$"):
            with txnlab_interleave(setup=ACCOUNTS):
                pass
        moves.resume("s1")
        assert moves.query(BALANCES) == [(1, 90), (2, 110)]  # the outer run's sessions were left alone



def test_ending_the_block_ends_a_call_that_paused_only_once_another_was_ended(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    """s2 pauses holding row 1; s1's next call waits for it, then pauses at its own point once
    s2's unwinding releases the row: it must be ended too, its cleanup run, its writes undone."""
    cleaned_up: list[int] = []
    with txnlab_interleave(setup=ACCOUNTS, final=BALANCES) as moves:
        moves.start("s1", transfer, 2, 1, 1)  # an earlier call: s1 comes first among the sessions
        moves.start("s2", transfer, 1, 2, 10, until=before("COMMIT"))
        later = moves.start("s1", noting_cleanup(cleaned_up), 1, 2, 5, until=before("COMMIT"))
        assert later.waiting_for == ("s2",)
    assert (later.state, cleaned_up) == ("ended", [5])
    assert [event.rows for event in moves.timeline.final] == [(("1", "101"), ("2", "99"))]  # only the first call committed


def test_starting_a_call_on_a_session_whose_call_then_pauses_is_refused(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        moves.start("s1", transfer, 1, 2, 10, until=after("UPDATE", nth=1))
        moves.start("s2", transfer, 1, 2, 5, until=before("COMMIT"))  # waits for s1's row lock
        moves.resume("s1")  # s1 commits: s2 goes on, and pauses before its COMMIT
        with pytest.raises(InterleaveError, match=r"session s2 is paused in transfer\(conn, 1, 2, 5\)"):
            moves.start("s2", transfer, 2, 1, 1)


def test_a_commit_psycopg2_does_not_send_is_no_statement_and_no_point(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    def explicit_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(DEBIT, (10, 1))
        conn.commit()  # autocommit: psycopg2 sends nothing, the transaction stays open
        with conn.cursor() as cur:
            cur.execute("COMMIT")

    with txnlab_interleave(setup=ACCOUNTS) as moves:
        call = moves.start("s1", explicit_begin, until=before("COMMIT"))
        assert call.statements == ["BEGIN", DEBIT]  # paused before the COMMIT it really sends
        assert moves.query(BALANCES) == [(1, 100), (2, 100)]


def test_an_exception_in_a_paused_calls_cleanup_fails_the_block(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    def clumsy(conn) -> None:  # type: ignore[no-untyped-def]
        try:
            transfer(conn, 1, 2, 10)
        finally:
            raise KeyError("cleanup bug")

    with pytest.raises(KeyError, match="cleanup bug") as raised:  # raised by the block's end, which ends the call
        with txnlab_interleave(setup=ACCOUNTS) as moves:
            call = moves.start("s1", clumsy, until=before("COMMIT"))
    assert call.state == "ended"
    assert raised.value.__notes__ == ["(raised by test_an_exception_in_a_paused_calls_cleanup_fails_the_block."
                                      "<locals>.clumsy(conn) on session s1; txnlab_interleave)"]


def test_the_tests_own_sql_that_waits_for_a_paused_call_is_refused_at_once(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with txnlab_interleave(setup=ACCOUNTS) as moves:
        moves.start("s1", transfer, 1, 2, 10, until=before("COMMIT"))
        assert moves.sql("s2", "UPDATE accounts SET balance = 0 WHERE id = 1") is None  # it waits
        with pytest.raises(InterleaveError, match="session s2 is waiting for s1, paused in transfer"):
            moves.sql("s2", "SELECT 1")
        with pytest.raises(InterleaveError, match="session s2 is waiting for s1"):
            moves.finish()
        failed = moves.sql("s1", "SELEC 1")
        assert failed is not None and failed.error is not None and failed.error.sqlstate == "42601"


def test_a_query_blocked_by_a_paused_call_gives_up_after_the_step_timeout(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    def locks_the_table(conn) -> None:  # type: ignore[no-untyped-def]
        with conn:
            with conn.cursor() as cur:
                cur.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")

    with txnlab_interleave(setup=ACCOUNTS) as moves:
        moves.start("s1", locks_the_table, until=before("COMMIT"))
        with pytest.raises(InterleaveError, match=r"^query\(\) ran longer than the step timeout \(5 s\): s1 is paused "
                                                  r"in .*locks_the_table\(conn\), and may hold a lock it needs$"):
            moves.query(BALANCES)


def test_a_single_string_for_sessions_is_refused_not_split_into_characters(txnlab_interleave) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(pytest.fail.Exception, match=r"^txnlab: sessions='s1': give a list of names, such as \['s1'\]$"):
        with txnlab_interleave(sessions="s1"):
            pass
