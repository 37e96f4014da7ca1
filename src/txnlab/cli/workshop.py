"""Workshop mode (`txnlab run NAME --step`): pause before each step, let the room predict,
then reveal what PostgreSQL did, with who waits for whom and the locks behind it."""

from __future__ import annotations

import fcntl
import struct
import sys
import termios
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from txnlab.levels import Level
from txnlab.render.fit import code_lines, display_width, wrap
from txnlab.render.text import TextStyle, render_step_events
from txnlab.scenario import Scenario
from txnlab.timeline import Event, Outcome

CHOICES = {"o": "runs ok", "b": "blocks", "f": "fails"}
RELEASED_CHOICES = {"o": "ends ok", "f": "fails"}  # a step released from its wait completes or fails (or times out)
WORDS = {"ok": "o", "block": "b", "fail": "f"}  # the room may answer with the word or its first letter


def _typed_ahead() -> bool:
    """Whether keys already wait in the terminal's input queue (FIONREAD > 0): typed before the
    prompt was shown (while the server starts or a step runs), so the terminal echoed them
    then, above the prompt, and the prompt reads them at once with no line end after it."""
    try:
        waiting = fcntl.ioctl(sys.stdin.fileno(), termios.FIONREAD, struct.pack("i", 0))
    except (OSError, ValueError):  # not a terminal, or no file descriptor (a test's stream)
        return False
    return struct.unpack("i", waiting)[0] > 0


def _prompt(text: str, **options: Any) -> Any:
    """click.prompt, but a prompt answered by keys typed ahead shows that answer and ends its
    line, as if typed there: the next output never runs on after the prompt."""
    ahead = _typed_ahead()
    answer = click.prompt(text, **options)
    if ahead:
        click.echo(answer)
    return answer


def _answer(question: str, choices: dict[str, str]) -> str:
    """Ask `question` until the answer is one of `choices`' letters or their words (any case);
    returns the letter."""
    accepted = [*choices, *(word for word, letter in WORDS.items() if letter in choices)]
    letters = ", ".join(choices)  # the words are accepted too, but the letters are what the room sees
    answer = _prompt(f"{question} ({letters})", type=click.Choice(accepted, case_sensitive=False),
                     show_choices=False)
    return WORDS.get(answer.lower(), answer.lower())


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
    _right: int = 0
    _asked: int = 0
    _pending: dict[str, str] = field(default_factory=dict)  # step -> prediction, until its first event

    def before_step(self, session: str, step: str, sql: str, *, python: bool = False) -> None:
        self._number += 1
        total = len(self.scenario.default_permutation)
        header = f"── step {self._number} of {total} · {session} "  # the level is in the scenario's heading
        click.echo(self.style(header + "─" * max(0, self.width - display_width(header)), bold=True))
        for line in code_lines(sql, self.width) if python else wrap(sql, self.width):
            click.echo(self.style(line, fg="cyan", bold=True))
        narration = self.scenario.steps[step].narration if step in self.scenario.steps else None
        for line in wrap(narration, self.width) if narration else []:
            click.echo(self.style(line, italic=True))
        if self.predict:
            self._pending[step] = _answer("Will it run (o)k, (b)lock or (f)ail?", CHOICES)
        else:
            _prompt("Press Enter to run it", default="", show_default=False, prompt_suffix="")

    def after_step(self, events: Sequence[Event]) -> None:
        """Reveal each event in order; with --predict, each step's guess right after its result,
        and before a step released from its wait is revealed, the room's guess of how it ends."""
        for event in events:
            released = self.predict and event.after_wait
            guess = self._ask_released(event) if released else self._pending.pop(event.step, None)
            click.echo(render_step_events([event], width=self.width, style=self.style))
            if guess is not None:
                self._reveal(guess, event, RELEASED_CHOICES if released else CHOICES)
        click.echo()

    def _ask_released(self, event: Event) -> str:
        """Ask how a step that waited will end, now that what it waited for has ended."""
        waited_for = ", ".join(event.blocked_by) or "another session"
        question = f"{event.step} ({event.session}) was waiting for {waited_for} and goes on now."
        for line in wrap(question, self.width):
            click.echo(self.style(line, fg="yellow", bold=True))
        return _answer("Will it end (o)k or (f)ail?", RELEASED_CHOICES)

    def _reveal(self, guess: str, event: Event, words: dict[str, str]) -> None:
        actual = observed_choice(event)
        self._asked += 1
        self._right += guess == actual
        verdict = self.style("right", fg="green", bold=True) if guess == actual else self.style("wrong", fg="red", bold=True)
        rolled_back = " but the server rolled it back" if event.rolled_back else ""
        said = wrap(f"The room said it {words[guess]}; it {words.get(actual, CHOICES[actual])}{rolled_back}:",
                    self.width - 7)
        click.echo("\n".join(said) + f" {verdict}.")

    def closing_line(self) -> str | None:
        if not self._asked:
            return None
        return f"The room got {self._right} of {self._asked} predictions right at {self.level.value}."
