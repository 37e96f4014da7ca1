"""The third scenario source: PostgreSQL's isolation test specs (`.spec` files).

The grammar is isolationtester's (src/test/isolation/specparse.y and specscanner.l, and the
format's description in that directory's README):

    spec        := setup* [teardown] session+ permutation*
    setup       := "setup" SQL              teardown := "teardown" SQL
    session     := "session" NAME [setup] step+ [teardown]
    step        := "step" NAME SQL
    permutation := "permutation" (NAME ["(" marker ("," marker)* ")"])+
    marker      := "*" | NAME | NAME "notices" INTEGER

A NAME is plain (letters, digits, `_`, `$`, not starting with a digit) or double-quoted
(`""` inside is one `"`), and is never case-folded; a keyword used as a name must be quoted. `#` starts a comment outside
SQL. An SQL block is everything between `{` and `}` (it cannot contain `}`), without the
spaces and tabs that follow `{` or precede `}`: newlines are kept, and isolationtester
prints the text exactly so. A spec without permutation lines runs every interleaving of its
sessions' steps (see `permutations`).

The result is the same validated `Scenario` the YAML and Python sources build, marked
`isolationtester`: the runner then runs it as isolationtester does. Every problem raises
ScenarioError as `file:line: problem` (exit 2).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from txnlab.errors import ScenarioError
from txnlab.levels import Level
from txnlab.scenario.model import Blocker, Scenario, SessionSpec, Step
from txnlab.scenario.permutations import interleaving_count, interleavings

# Interleavings a spec without permutation lines may generate: they are all built when it is
# read (and `show` lists them), and the count grows as a multinomial (6 sessions of 4 steps:
# 3.2e15), so past this a spec must list its permutations. PostgreSQL's own specs reach 210.
GENERATED_LIMIT = 10_000
KEYWORDS = frozenset({"permutation", "session", "setup", "step", "teardown"})
TOKEN = re.compile(
    r"(?P<newline>\n)|(?P<space>[ \t\r\f]+)|(?P<comment>#[^\n\r]*)"
    r"|(?P<sql>\{[ \t\r\f]*)|(?P<quoted>\")"
    r"|(?P<name>[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*)|(?P<integer>[0-9]+)|(?P<punct>[(),*])"
)

# A double-quoted name on one line; `""` inside it is one `"` (specscanner.l's qident).
QUOTED_NAME = re.compile(r'"((?:[^"\n]|"")*)"')


@dataclass(frozen=True)
class Token:
    kind: str  # keyword, name, integer, sql, or the punctuation character itself
    text: str
    line: int


def tokens(text: str, source: str) -> Iterator[Token]:
    """The spec's tokens; raises ScenarioError at the first character that starts none."""
    line, position = 1, 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:
            raise ScenarioError(source, f"unexpected character {text[position]!r}", line)
        kind = match.lastgroup
        if kind == "newline":
            line += 1
        elif kind == "sql":
            start = match.end()
            end = text.find("}", start)
            if end < 0:
                raise ScenarioError(source, "unterminated SQL block: no '}' before the end of the file", line)
            body_end = end
            while body_end > start and text[body_end - 1] in " \t\r\f":
                body_end -= 1
            yield Token("sql", text[start:body_end], line)
            line += text.count("\n", start, end)
            position = end + 1
            continue
        elif kind == "quoted":
            quoted = QUOTED_NAME.match(text, position)
            if quoted is None:
                raise ScenarioError(source, "unterminated quoted name", line)
            yield Token("name", quoted.group(1).replace('""', '"'), line)
            position = quoted.end()
            continue
        elif kind == "name":
            word = match.group()
            yield Token("keyword" if word in KEYWORDS else "name", word, line)
        elif kind == "integer":
            yield Token("integer", match.group(), line)
        elif kind == "punct":
            yield Token(match.group(), match.group(), line)
        position = match.end()


class _Parser:
    """A recursive-descent reading of the grammar above, one token of lookahead."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.items = list(tokens(text, source))
        self.index = 0
        self.last_line = text.count("\n") + 1

    def peek(self, kind: str, text: str | None = None) -> bool:
        if self.index >= len(self.items):
            return False
        token = self.items[self.index]
        return token.kind == kind and (text is None or token.text == text)

    def take(self, kind: str, text: str | None = None, wanted: str | None = None) -> Token:
        if self.peek(kind, text):
            self.index += 1
            return self.items[self.index - 1]
        if self.index >= len(self.items):
            raise ScenarioError(self.source, f"expected {wanted or text or kind}, found the end of the file",
                                self.last_line)
        token = self.items[self.index]
        found = "an SQL block" if token.kind == "sql" else repr(token.text)
        hint = " (quote a keyword to use it as a name)" if token.kind == "keyword" and kind == "name" else ""
        raise ScenarioError(self.source, f"expected {wanted or text or kind}, found {found}{hint}", token.line)

    def sql(self, what: str) -> Token:
        return self.take("sql", wanted=f"an SQL block {{ ... }} for {what}")


@dataclass
class _Session:
    name: str
    line: int
    setup: Token | None
    steps: list[tuple[Token, Token]]  # (name, sql)
    teardown: Token | None


def parse_spec(text: str, source: str) -> Scenario:
    """Build the scenario a spec's text describes; `source` names the file in messages.

    Raises ScenarioError (`file:line: problem`) for a syntax error and for what
    isolationtester refuses: duplicate step names, a permutation naming an unknown step,
    a marker naming a step outside its permutation or of its own session; and, without
    permutation lines, more interleavings than GENERATED_LIMIT."""
    parser = _Parser(text, source)
    setups = []
    while parser.peek("keyword", "setup"):
        parser.take("keyword", "setup")
        setups.append(parser.sql("setup"))
    teardown = None
    if parser.peek("keyword", "teardown"):
        parser.take("keyword", "teardown")
        teardown = parser.sql("teardown")
    sessions: list[_Session] = []
    while parser.peek("keyword", "session") or not sessions:
        keyword = parser.take("keyword", "session", wanted="'session'")
        name = parser.take("name", wanted="a session name")
        session_setup = None
        if parser.peek("keyword", "setup"):
            parser.take("keyword", "setup")
            session_setup = parser.sql(f"session {name.text}'s setup")
        steps = []
        while parser.peek("keyword", "step") or not steps:
            parser.take("keyword", "step", wanted=f"'step' (session {name.text} needs at least one)")
            step_name = parser.take("name", wanted="a step name")
            steps.append((step_name, parser.sql(f"step {step_name.text}")))
        session_teardown = None
        if parser.peek("keyword", "teardown"):
            parser.take("keyword", "teardown")
            session_teardown = parser.sql(f"session {name.text}'s teardown")
        sessions.append(_Session(name.text, keyword.line, session_setup, steps, session_teardown))
    listed: list[list[tuple[Token, tuple[tuple[Blocker, Token], ...]]]] = []
    while parser.peek("keyword", "permutation"):
        parser.take("keyword", "permutation")
        entries = []
        while parser.peek("name") or not entries:
            step_name = parser.take("name", wanted="a step name")
            entries.append((step_name, _markers(parser) if parser.peek("(") else ()))
        listed.append(entries)
    if parser.index < len(parser.items):
        token = parser.items[parser.index]
        raise ScenarioError(source, f"unexpected {token.text!r} (the order is: setup, teardown, sessions, "
                            "permutations)", token.line)
    return _scenario(Path(source), text, setups, teardown, sessions, listed)


def _markers(parser: _Parser) -> tuple[tuple[Blocker, Token], ...]:
    parser.take("(")
    markers = []
    while True:
        if parser.peek("*"):
            markers.append((Blocker(), parser.take("*")))
        else:
            other = parser.take("name", wanted="a marker: *, a step name, or 'STEP notices N'")
            notices = None
            if parser.peek("name", "notices"):
                parser.take("name", "notices")
                notices = int(parser.take("integer", wanted="a number of notices").text)
            markers.append((Blocker(step=other.text, notices=notices), other))
        if parser.peek(")"):
            parser.take(")")
            return tuple(markers)
        parser.take(",", wanted="',' or ')'")


def _scenario(
    path: Path, text: str, setups: list[Token], teardown: Token | None, sessions: list[_Session],
    listed: list[list[tuple[Token, tuple[tuple[Blocker, Token], ...]]]],
) -> Scenario:
    source = str(path)
    steps: dict[str, Step] = {}
    lines: dict[str, int] = {f"setup.{i}": t.line for i, t in enumerate(setups)}
    if teardown is not None:
        lines["teardown.0"] = teardown.line
    seen_sessions: set[str] = set()
    for session in sessions:
        if session.name in seen_sessions:
            raise ScenarioError(source, f"duplicate session name: {session.name}", session.line)
        seen_sessions.add(session.name)
        if session.setup is not None:
            lines[f"session.{session.name}.setup.0"] = session.setup.line
        if session.teardown is not None:
            lines[f"session.{session.name}.teardown.0"] = session.teardown.line
        for name, sql in session.steps:
            if name.text in steps:
                raise ScenarioError(source, f"duplicate step name: {name.text}", name.line)
            steps[name.text] = Step(name=name.text, session=session.name, sql=sql.text)
            lines[f"step.{name.text}"] = name.line
    permutations, markers = _permutations(source, steps, sessions, listed)
    return Scenario(
        name=path.stem,
        title=path.stem,
        summary=_summary(text),
        source=path,
        sessions=tuple(
            SessionSpec(
                name=s.name,
                setup=(s.setup.text,) if s.setup is not None else (),
                teardown=(s.teardown.text,) if s.teardown is not None else (),
                autocommit=True,
            )
            for s in sessions
        ),
        steps=steps,
        permutations=permutations,
        setup=tuple(t.text for t in setups),
        teardown=(teardown.text,) if teardown is not None else (),
        levels=(Level.READ_COMMITTED,),  # not set by the runner: sessions keep the server's default
        lines=lines,
        isolationtester=True,
        markers=markers,
    )


def _permutations(
    source: str, steps: dict[str, Step], sessions: list[_Session],
    listed: list[list[tuple[Token, tuple[tuple[Blocker, Token], ...]]]],
) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[tuple[Blocker, ...], ...], ...]]:
    """The permutations to run, and their markers (see Scenario.markers), checked as
    isolationtester's check_testspec checks them."""
    if not listed:
        piles = [[name.text for name, _ in s.steps] for s in sessions]
        if (count := interleaving_count(piles)) > GENERATED_LIMIT:
            raise ScenarioError(
                source, f"its {sum(map(len, piles))} steps in {len(piles)} sessions have {count} interleavings, more "
                f"than txnlab generates ({GENERATED_LIMIT}); list the ones to run on permutation lines",
                sessions[0].line,
            )
        return tuple(interleavings(piles)), ()
    permutations = []
    markers = []
    for entries in listed:
        names = [name.text for name, _ in entries]
        for name, _ in entries:
            if name.text not in steps:
                raise ScenarioError(source, f"undefined step {name.text!r} in permutation", name.line)
        for name, blockers in entries:
            for blocker, token in blockers:
                if blocker.step is None:
                    continue
                if blocker.step not in names:
                    raise ScenarioError(
                        source, f"step {name.text}'s marker names {blocker.step!r}, which is not a step "
                        "of this permutation", token.line,
                    )
                if steps[blocker.step].session == steps[name.text].session:
                    raise ScenarioError(
                        source, f"step {name.text} cannot wait for {blocker.step}: both are session "
                        f"{steps[name.text].session}'s", token.line,
                    )
        permutations.append(tuple(names))
        markers.append(tuple(tuple(b for b, _ in blockers) for _, blockers in entries))
    has_markers = any(any(m) for m in markers)
    return tuple(permutations), tuple(markers) if has_markers else ()


def _summary(text: str) -> str:
    """The spec's leading comment (its `#` lines before the first keyword), as one paragraph."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            lines.append(stripped.lstrip("#").strip())
        elif stripped:
            break
    return " ".join(line for line in lines if line) or "A PostgreSQL isolation test spec."


def load_spec(path: Path) -> Scenario:
    """Read and parse a `.spec` file; ScenarioError when it cannot be read or parsed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(str(path), f"cannot read the spec: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(str(path), f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot start or continue a "
                            "character", line) from None
    return parse_spec(text, str(path))
