"""The first version of `transfer`, kept to show what the tests catch: it reads both
balances, computes the new ones in Python and writes them back. Alone it is correct;
beside a concurrent transfer, the second writer overwrites the first one's change
(a lost update), and money appears or vanishes.
"""


def transfer(conn, source: int, target: int, amount: int) -> None:
    """Move `amount` from `source` to `target`: read, compute, write back."""
    with conn:
        with conn.cursor() as cur:
            cur.execute("SELECT balance FROM accounts WHERE id = %s", [source])
            (source_balance,) = cur.fetchone()
            cur.execute("SELECT balance FROM accounts WHERE id = %s", [target])
            (target_balance,) = cur.fetchone()
            cur.execute("UPDATE accounts SET balance = %s WHERE id = %s", [source_balance - amount, source])
            cur.execute("UPDATE accounts SET balance = %s WHERE id = %s", [target_balance + amount, target])
            cur.execute(
                "INSERT INTO transfers (source, target, amount) VALUES (%s, %s, %s)",
                [source, target, amount],
            )
