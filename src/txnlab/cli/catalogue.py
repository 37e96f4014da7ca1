"""`txnlab list` and `txnlab show`: read the catalogue and the user's scenarios, no database needed."""

from __future__ import annotations

from pathlib import Path

import click

from txnlab.cli.options import scenario_dir_option, terminal_width, through_driver, user_catalogue
from txnlab.render.describe import named_title
from txnlab.render.fit import MIN_CELL, code_lines, display_width, fit_table, hanging, wrap, wrap_paragraphs
from txnlab.scenario import Catalogue, Scenario
from txnlab.scenario.chosen_permutations import session_piles
from txnlab.runner.drivers import DEFAULT_DRIVER
from txnlab.runner.drivers import NAMES as DRIVER_NAMES
from txnlab.scenario.model import Blocker, Expectation, SessionSpec
from txnlab.scenario.permutations import interleaving_count, interleavings
from txnlab.scenario.workload import transaction_function

PERMUTATIONS_SHOWN = 10  # `show` lists this many of a spec's permutations, then says how many more


@click.command("list")
@click.option("--tag", help="Only scenarios with this tag (e.g. blog, lost-update, locks).")
@scenario_dir_option
def list_command(tag: str | None, directory: Path | None) -> None:
    """List the scenarios: txnlab's catalogue and yours (--dir, ./scenarios, the user data folder).

    A scenario of yours with a catalogue scenario's name replaces it everywhere; the
    `from` column says so.
    """
    catalogue = user_catalogue(directory)
    scenarios = catalogue.with_tag(tag) if tag else list(catalogue.scenarios.values())
    labels = _folder_labels(catalogue)
    rows = sorted([s.name, s.title, ", ".join(s.tags), _origin(catalogue, s.name, labels)] for s in scenarios)
    width = terminal_width()
    click.echo(fit_table(rows, ["name", "title", "tags", "from"], width=width, tablefmt="simple", keep=[0]))
    used = {label: folder for folder, label in labels.items() if any(label in row[3] for row in rows)}
    for label, folder in used.items():
        click.echo(wrap_paragraphs(f"{label}: {folder}", width))


def _folder_labels(catalogue: Catalogue) -> dict[Path, str]:
    """Short names for the folders scenarios come from, for the `from` column: catalogue, yours-1..."""
    labels = {catalogue.directory: "catalogue"}
    for number, folder in enumerate(catalogue.user, 1):
        labels[folder] = "yours" if len(catalogue.user) == 1 else f"yours-{number}"
    return labels


def _origin(catalogue: Catalogue, name: str, labels: dict[Path, str]) -> str:
    label = labels[catalogue.origin[name]]
    replaced = catalogue.replaced.get(name)
    return f"{label} (replaces {labels[replaced]})" if replaced is not None else label


@click.command("show")
@click.argument("name")
@scenario_dir_option
@click.option(
    "--driver", metavar="|".join(DRIVER_NAMES),
    help="Describe the sessions as `txnlab run --driver` runs them (driver-neutral scenarios, and "
         "multi-driver Python scenarios that declare it).",
)
def show_command(name: str, directory: Path | None, driver: str | None) -> None:
    """Explain a scenario: what it does and what PostgreSQL will do, without running it."""
    [scenario] = through_driver([user_catalogue(directory).resolve(name)], driver)
    click.echo(describe(scenario, terminal_width(), chosen=driver is not None))


# How a session that is not autocommit runs its transactions, per driver (see runner.drivers).
TRANSACTION_STYLES = {
    "psycopg2": "psycopg2 default: implicit transactions",
    "psycopg": "psycopg 3 default: implicit transactions",
    "asyncpg": "asyncpg: conn.transaction() started before the first statement",
}
DRIVER_LABELS = {"psycopg2": "psycopg2", "psycopg": "psycopg 3", "asyncpg": "asyncpg"}


def _transaction_style(session: SessionSpec, choices: tuple[str, ...] = ()) -> str:
    """How `session` runs its statements, through its own driver (psycopg2, the default, unnamed
    when the session autocommits). `choices`: the drivers a multi-driver Python scenario declares,
    when none was chosen; a session that pins none then speaks whichever the run picks."""
    if len(choices) > 1 and not session.driver_pinned:
        labels = [f"{DRIVER_LABELS[choices[0]]} (default)", *(DRIVER_LABELS[name] for name in choices[1:])]
        picked = f"the run's driver, chosen with --driver: {', '.join(labels[:-1])} or {labels[-1]}"
        return f"{picked}; autocommit" if session.autocommit else picked
    if not session.autocommit:
        return TRANSACTION_STYLES[session.driver]
    style = "autocommit, statements as written"
    return style if session.driver == DEFAULT_DRIVER else f"{DRIVER_LABELS[session.driver]}, {style}"


def describe(scenario: Scenario, width: int = 88, *, chosen: bool = False) -> str:
    """The scenario in words, wrapped to `width` display columns. `chosen`: its sessions' drivers
    are the ones `--driver` chose (else a multi-driver scenario's sessions name every driver it declares)."""
    lines = [click.style(line, bold=True) for line in wrap(named_title(scenario), width)] + [""]
    lines += wrap(scenario.summary, width)
    if scenario.setup:
        lines += ["", "Setup:"] + [part for sql in scenario.setup for part in _code_lines(sql, width)]
    lines += ["", "Sessions:"]
    for session in scenario.sessions:
        style = _transaction_style(session, () if chosen else scenario.drivers)
        if scenario.isolationtester:
            style = "a plain connection with the server's defaults, statements as written"
        extra = [f"level pinned to {session.level.value}"] if session.level else []
        extra += ["read only"] if session.read_only else []
        extra += ["deferrable"] if session.deferrable else []
        lines += wrap(f"{session.name} ({', '.join([style, *extra])})", width, indent="  ")
        lines += [line for s in session.setup for line in wrap(f"setup: {s}", width, indent="    ")]
    lines += ["", "Steps (each session's, in order):" if scenario.isolationtester else "Steps:"]
    for number, step_name in enumerate(scenario.steps if scenario.isolationtester else scenario.default_permutation, 1):
        step = scenario.steps[step_name]
        lines += _step_lines(f"  {number:>2}. {step.session:<10} {step.name:<18} ", step.sql, width,
                             code=scenario.play is not None)
        if step.narration:
            lines += wrap(step.narration, min(width, 88), indent=" " * 8)
    if scenario.invariants:
        lines += ["", "Invariants (checked on the final state):"]
        lines += [line for name, sql in scenario.invariants.items() for line in wrap(f"{name}: {sql}", width, indent="  ")]
    if scenario.final:
        lines += ["", "Final state (shown after the run):"] + [part for sql in scenario.final for part in _code_lines(sql, width)]
    lines += ["", "Permutations:", *permutation_lines(scenario, width)]
    if scenario.workload is not None:
        lines += ["", f"Workload (txnlab bench {scenario.name}):", *workload_lines(scenario, width)]
    lines += ["", "What PostgreSQL does:"]
    if scenario.isolationtester:
        lines += wrap("A .spec states no expectations: isolationtester's expected output is its check. txnlab "
                      "runs and shows every permutation, without a verdict.", width, indent="  ")
    for level, expectation in scenario.expectations.items():
        lines += _expectation_lines(f"{level.value}:", scenario, expectation, width, "  ")
    if scenario.references:
        lines += ["", "References:"] + [line for ref in scenario.references for line in wrap(ref, width, indent="  ")]
    return "\n".join(lines)


def _step_lines(prefix: str, text: str, width: int, *, code: bool) -> list[str]:
    """A step beside its number, session and name. `code`: the step may be a Python step (a
    Python scenario's), whose text keeps its lines and indentation when it has several lines
    (see fit.code_lines); a one-line text is wrapped as SQL is."""
    margin = display_width(prefix)
    if not code or "\n" not in text.strip() or width - margin < 2 * MIN_CELL:
        return hanging(prefix, text, width)
    first, *rest = code_lines(text, width - margin)
    return [prefix + first] + [" " * margin + line for line in rest]


def permutation_lines(scenario: Scenario, width: int) -> list[str]:
    """How many permutations a run makes and which: a spec's (listed, with their markers, or
    generated), or a YAML scenario's own order and what --permutations all would run."""
    count = interleaving_count(session_piles(scenario))  # a multinomial: computed, never enumerated
    if not scenario.isolationtester:
        said = (f"txnlab run follows the steps in the order above; --permutations all runs every one of the "
                f"{count} interleavings of the sessions' steps, --permutations 'STEP STEP ...' the orders you "
                "write. Only the order above is checked against the expectations.")
        return wrap(said, width, indent="  ")
    piles = session_piles(scenario)
    if len(scenario.permutations) == count and scenario.permutations[0] == next(interleavings(piles)):
        said = f"{count}: every interleaving of the sessions' steps, in isolationtester's order (the spec lists none)"
    else:
        said = f"{len(scenario.permutations)}, as the spec lists them"
    lines = wrap(said, width, indent="  ")
    for number, permutation in enumerate(scenario.permutations[:PERMUTATIONS_SHOWN], 1):
        steps = " ".join(step + _markers(scenario.blockers(number - 1, j)) for j, step in enumerate(permutation))
        lines += hanging(f"  {number:>3}. ", steps, width)
    if len(scenario.permutations) > PERMUTATIONS_SHOWN:
        lines += wrap(f"... and {len(scenario.permutations) - PERMUTATIONS_SHOWN} more", width, indent="       ")
    return lines


def _markers(blockers: tuple[Blocker, ...]) -> str:
    """A step's markers as a permutation line writes them: `(*)`, `(s2a)`, `(s2a notices 1)`."""
    if not blockers:
        return ""
    words = ["*" if b.once else b.step + (f" notices {b.notices}" if b.notices is not None else "") for b in blockers]
    return f"({', '.join(str(w) for w in words)})"


def workload_lines(scenario: Scenario, width: int) -> list[str]:
    """The scenario's workload in words (its summary, data, transaction, measures and
    invariants), indented by two; the scenario must have one."""
    workload = scenario.workload
    assert workload is not None
    lines = wrap(workload.summary, width, indent="  ") if workload.summary else []
    if workload.setup:
        lines += ["  Setup (after the scenario's):"] + [part for sql in workload.setup for part in _code_lines(sql, width, "    ")]
    if workload.script is not None:
        lines += ["  Transaction (a pgbench script, the same for txnlab and pgbench):", *_code_lines(workload.script, width, "    ")]
    else:
        code = getattr(transaction_function(scenario), "__code__", None)
        where = f"{scenario.source}:{code.co_firstlineno}" if code is not None else str(scenario.source)
        lines += wrap(f"Transaction: the Python function {workload.function}(conn, rng) at {where}, one transaction "
                      "through psycopg2 (no pgbench twin)", width, indent="  ")
    for head, named in (("Measures (counted after each run):", workload.measures),
                        ("Invariants (checked after each run):", workload.invariants)):
        if named:
            lines += [f"  {head}"] + [line for name, sql in named.items() for line in hanging(f"    {name}: ", sql, width)]
    return lines


def _code_lines(sql: str, width: int, indent: str = "  ") -> list[str]:
    """SQL as written, line by line, indented by `indent`; a line too long wraps under itself."""
    lines = []
    for line in sql.strip("\n").splitlines():
        margin = indent + line[: len(line) - len(line.lstrip())]
        lines += hanging(margin, line.strip(), width) if line.strip() else [""]
    return lines


def _expectation_lines(head: str, scenario: Scenario, expectation: Expectation, width: int, indent: str) -> list[str]:
    """`head` on a line of its own, then each fact of `expectation` on its own line(s), one
    level deeper (see expectation_facts); each accepted alternative likewise, deeper still."""
    lines = wrap(head, width, indent=indent)
    for fact in expectation_facts(scenario, expectation) or ["every step succeeds without waiting"]:
        lines += hanging(indent + "  ", fact, width)
    for alternative in expectation.alternatives:
        lines += _expectation_lines(f"or, accepted alternative {alternative.name}:", scenario, alternative, width,
                                    indent + "  ")
    return lines


def expectation_facts(scenario: Scenario, expectation: Expectation) -> list[str]:
    """What an expectation says PostgreSQL does, one phrase per fact it states: waits (and
    for whom), errors (and their DETAIL), rows affected, notices, locks held, what the driver
    sent (joined by " · " as timelines join them) and the server's state of the session, the
    anomaly, the note. Its accepted alternatives are not included."""
    parts = []
    if expectation.blocked:
        parts.append("blocks: " + ", ".join(
            step + (f" (waits for {', '.join(sorted(expectation.blocked_by[step]))})" if step in expectation.blocked_by else "")
            for step in sorted(expectation.blocked)
        ))
    if expectation.errors:
        details = {s: f", DETAIL containing {d!r}" for s, d in expectation.error_details.items()}
        parts.append("fails: " + ", ".join(f"{s} ({c}{details.get(s, '')})" for s, c in expectation.errors.items()))
    if expectation.rowcount:
        parts.append("rows affected: " + ", ".join(f"{s} {n}" for s, n in expectation.rowcount.items()))
    if expectation.notices:
        parts.append("notices: " + ", ".join(
            f"{s} {' '.join(map(repr, texts)) or 'none'}" for s, texts in expectation.notices.items()
        ))
    parts += [f"locks held after {s}: {', '.join(locks) or 'none'}" for s, locks in expectation.holds.items()]
    parts += [f"{s} sends: {' · '.join(messages) or 'nothing'}" for s, messages in expectation.sent.items()]
    parts += [f"the server shows {s}'s session {state}" for s, state in expectation.states.items()]
    if expectation.anomaly is not None and scenario.anomaly:
        parts.append(f"{scenario.anomaly.name} {'happens' if expectation.anomaly else 'is prevented'}")
    if expectation.note:
        parts.append(expectation.note)
    return parts
