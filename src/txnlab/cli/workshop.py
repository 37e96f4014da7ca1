"""Workshop mode (`txnlab run NAME --step`): pause before each step, let the room predict,
then reveal what PostgreSQL did, with who waits for whom and the locks behind it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import click

from txnlab.levels import Level
from txnlab.render.fit import display_width, wrap
from txnlab.render.text import TextStyle, render_step_events
from txnlab.scenario import Scenario
from txnlab.timeline import Event, Outcome

CHOICES = {"o": "runs ok", "b": "blocks", "f": "fails"}


def observed_choice(event: Event) -> str:
    if event.outcome is Outcome.BLOCKED:
        return "b"
    return "f" if event.outcome in (Outcome.ERROR, Outcome.TIMEOUT, Outcome.SKIPPED) else "o"


@dataclass
class Workshop:
    """A Watcher for the runner that talks to the presenter through the terminal."""

    scenario: Scenario
    level: Level
    predict: bool
    style: TextStyle
    width: int
    _number: int = 0
    _prediction: str | None = None
    _right: int = 0
    _asked: int = 0
    _pending: dict[str, str] = field(default_factory=dict)  # step -> prediction, for steps still waiting

    def before_step(self, session: str, step: str, sql: str) -> None:
        self._number += 1
        total = len(self.scenario.default_permutation)
        header = f"── step {self._number} of {total} · {session} "  # the level is in the scenario's heading
        click.echo(self.style(header + "─" * max(0, self.width - display_width(header)), bold=True))
        for line in wrap(sql, self.width):
            click.echo(self.style(line, fg="cyan", bold=True))
        narration = self.scenario.steps[step].narration if step in self.scenario.steps else None
        for line in wrap(narration, self.width) if narration else []:
            click.echo(self.style(line, italic=True))
        if self.predict:
            answer = click.prompt(
                "Will it run (o)k, (b)lock or (f)ail?", type=click.Choice(list(CHOICES)), show_choices=True
            )
            self._pending[step] = answer
        else:
            click.prompt("Press Enter to run it", default="", show_default=False, prompt_suffix="")

    def after_step(self, events: Sequence[Event]) -> None:
        click.echo(render_step_events(events, width=self.width, style=self.style))
        for event in events:
            if event.step in self._pending and not event.after_wait:
                self._reveal(self._pending.pop(event.step), event)
        click.echo()

    def _reveal(self, guess: str, event: Event) -> None:
        actual = observed_choice(event)
        self._asked += 1
        self._right += guess == actual
        verdict = self.style("right", fg="green", bold=True) if guess == actual else self.style("wrong", fg="red", bold=True)
        rolled_back = " but the server rolled it back" if event.rolled_back else ""
        said = wrap(f"The room said it {CHOICES[guess]}; it {CHOICES[actual]}{rolled_back}:", self.width - 7)
        click.echo("\n".join(said) + f" {verdict}.")

    def closing_line(self) -> str | None:
        if not self._asked:
            return None
        return f"The room predicted {self._right} of {self._asked} steps right at {self.level.value}."
