"""Which permutations a run asks for: `--permutations all` or orders of steps written out.

`all` is every interleaving of the sessions' steps that keeps each session's steps in
their order, generated in PostgreSQL's isolationtester order (`permutations.interleavings`),
for YAML scenarios and `.spec` files alike. A written order names steps separated by spaces
(a `.spec`'s quoted names may be double-quoted, as on its permutation lines). The count of
interleavings grows as a multinomial coefficient, so `all` refuses to run more than a
limit (`--max-permutations`) unless the limit is raised.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from txnlab.errors import UsageError
from txnlab.scenario.model import Scenario
from txnlab.scenario.permutations import interleaving_count, interleavings

ALL = "all"
DEFAULT_LIMIT = 1000  # permutations per scenario that `--permutations all` runs without --max-permutations

Permutation = tuple[str, ...]


def session_piles(scenario: Scenario) -> list[list[str]]:
    """Each session's steps in the order the scenario writes them, sessions in their order."""
    return [[name for name, step in scenario.steps.items() if step.session == s.name] for s in scenario.sessions]


def chosen_permutations(scenario: Scenario, requests: Sequence[str], limit: int = DEFAULT_LIMIT) -> tuple[Permutation, ...] | None:
    """The permutations `requests` (the values of --permutations) ask of `scenario`, in order;
    None when there are none (the scenario's own then run). Raises UsageError (exit 2) for a
    Python scenario (its play() orders its steps), `all` mixed with written orders, more
    interleavings than `limit`, and a written order that `parse_permutation` refuses."""
    if not requests:
        return None
    if scenario.play is not None:
        raise UsageError(
            f"--permutations: {scenario.name} is a Python scenario, whose play() decides the order of its "
            "steps; --permutations needs a YAML scenario or a .spec"
        )
    if any(r.strip().lower() == ALL for r in requests):
        if len(requests) > 1:
            raise UsageError("--permutations all runs every interleaving; it cannot be combined with written orders")
        piles = session_piles(scenario)
        count = interleaving_count(piles)
        if count > limit:
            raise UsageError(
                f"--permutations all: {scenario.name}'s {sum(map(len, piles))} steps in {len(piles)} sessions have "
                f"{count} interleavings, more than --max-permutations {limit}; raise it to run them all"
            )
        return tuple(interleavings(piles))
    return tuple(parse_permutation(scenario, request) for request in requests)


def parse_permutation(scenario: Scenario, text: str) -> Permutation:
    """One written order, e.g. `"atm1_read atm2_read atm1_write"`: step names separated by
    spaces. Every name must be one of the scenario's steps. In a YAML scenario a step runs
    at most once and each session's steps keep their written order (a session's steps are
    one script); a `.spec` permutation may name any of its steps in any order, as
    isolationtester allows. Raises UsageError naming the first problem."""
    try:
        names = tuple(shlex.split(text))
    except ValueError as exc:
        raise UsageError(f"--permutations {text!r}: {exc}") from None
    if not names:
        raise UsageError("--permutations: an order names at least one step")
    for name in names:
        if name not in scenario.steps:
            known = ", ".join(scenario.steps)
            raise UsageError(f"--permutations: {scenario.name} has no step {name!r} (its steps: {known})")
    if scenario.isolationtester:
        return names
    for index, name in enumerate(names):
        if name in names[:index]:
            raise UsageError(f"--permutations {text!r}: step {name} is named twice; a step runs once per run")
    for pile in session_piles(scenario):
        named = [name for name in names if name in pile]
        if named != sorted(named, key=pile.index):
            later = next(a for a, b in zip(named, sorted(named, key=pile.index)) if a != b)
            session = scenario.steps[later].session
            raise UsageError(
                f"--permutations {text!r}: step {later} comes too early; session {session} runs its steps "
                f"in their written order ({' '.join(pile)})"
            )
    return names
