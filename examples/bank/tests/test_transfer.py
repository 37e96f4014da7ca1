"""Concurrent transfers, replayed in the dangerous order against a real PostgreSQL."""

from txnlab.pytest_plugin import before

from bank import SCHEMA

ACCOUNTS = SCHEMA + "INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 100);"
# Every balance is 100 plus what the transfers ledger says came in, minus what went out.
BALANCES_MATCH_LEDGER = {"balances match the ledger": """
    SELECT bool_and(balance = 100 + coalesce((SELECT sum(amount) FROM transfers WHERE target = a.id), 0)
                                  - coalesce((SELECT sum(amount) FROM transfers WHERE source = a.id), 0))
    FROM accounts AS a"""}


def balances(run):
    return dict(run.query("SELECT id, balance FROM accounts ORDER BY id"))


def test_a_transfer_moves_the_money(txnlab_interleave, transfer):
    with txnlab_interleave(setup=ACCOUNTS, sessions=["teller"]) as run:
        run.start("teller", transfer, 1, 2, 30)
        assert balances(run) == {1: 70, 2: 130}


def test_opposite_transfers_wait_for_each_other_and_both_count(txnlab_interleave, transfer):
    # Alice sends Bob 10; her transfer has done its work and is about to commit when Bob
    # sends Alice 5. Bob's transfer must wait for Alice's, then see its result.
    with txnlab_interleave(setup=ACCOUNTS, invariants=BALANCES_MATCH_LEDGER) as run:
        alice = run.start("s1", transfer, 1, 2, 10, until=before("COMMIT"))
        bob = run.start("s2", transfer, 2, 1, 5)
        assert bob.waited_for == ("s1",)
        run.resume("s1")
        run.finish()
        assert (alice.state, bob.state) == ("returned", "returned")
        after = balances(run)
    # Asserted after the block, so that a failure's timeline shows the whole run and its invariant.
    assert after == {1: 95, 2: 105}
    assert run.timeline.invariants == {"balances match the ledger": True}
