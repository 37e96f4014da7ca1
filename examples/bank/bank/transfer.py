"""Move money between two accounts, safely under concurrency.

Both rows are locked first, in account-id order whichever way the money goes, so two
opposite transfers queue on the same first row instead of deadlocking; the balances are
then changed by the server (`balance = balance - %s`), never written back from a value
read earlier, so a concurrent transfer's change is never overwritten.
"""


def transfer(conn, source: int, target: int, amount: int) -> None:
    """Move `amount` from account `source` to account `target` in one transaction."""
    with conn:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id FROM accounts WHERE id IN (%s, %s) ORDER BY id FOR UPDATE",
                [source, target],
            )
            cur.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", [amount, source])
            cur.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", [amount, target])
            cur.execute(
                "INSERT INTO transfers (source, target, amount) VALUES (%s, %s, %s)",
                [source, target, amount],
            )
