"""Every interleaving of the sessions' steps, in the order PostgreSQL's isolationtester runs them.

isolationtester (src/test/isolation/isolationtester.c, run_all_permutations) puts each
session's steps on a pile and, depth first, takes the next step from the first pile that
still has one, then from the second, and so on: the first interleaving runs every step of
the first session, then every step of the second. txnlab generates them in the same order,
so a spec without permutation lines prints its permutations as isolationtester does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from math import factorial


def interleavings(piles: Sequence[Sequence[str]]) -> Iterator[tuple[str, ...]]:
    """Each interleaving of `piles` (one sequence of step names per session, in session
    order) that keeps every session's steps in their order; isolationtester's order."""
    taken = [0] * len(piles)
    total = sum(len(pile) for pile in piles)
    chosen: list[str] = []

    def recurse() -> Iterator[tuple[str, ...]]:
        if len(chosen) == total:
            yield tuple(chosen)
            return
        for index, pile in enumerate(piles):
            if taken[index] < len(pile):
                chosen.append(pile[taken[index]])
                taken[index] += 1
                yield from recurse()
                taken[index] -= 1
                chosen.pop()

    return recurse()


def interleaving_count(piles: Sequence[Sequence[str]]) -> int:
    """How many interleavings `interleavings(piles)` yields: the multinomial coefficient
    (n1 + n2 + ...)! / (n1! n2! ...)."""
    count = factorial(sum(len(pile) for pile in piles))
    for pile in piles:
        count //= factorial(len(pile))
    return count
