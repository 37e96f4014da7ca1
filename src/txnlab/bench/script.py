"""The pgbench custom-script subset a workload is written in, so that pgbench runs the very
same text (PostgreSQL docs, pgbench, "Custom Scripts" and "Built-in Operators/Functions").

Accepted, line by line: blank lines and `--` comments; `\\set name expression` with integer
literals, `:var`, + - * / %, parentheses, unary minus and the functions random(lb, ub)
(uniform, both bounds included), abs, least, greatest; SQL statements, possibly over several
lines, each ending in `;`, or a SELECT ending in `\\gset [prefix]` instead, whose one row's
columns become variables. `:name` in SQL is replaced textually by the variable's value, as
pgbench does in its simple query mode (`::` casts are left alone). `:client_id` (the client's
number from 0) and `:scale` (1) exist as in pgbench. A script is exactly one transaction:
`BEGIN; ... COMMIT;` (or END) or a single statement.

Integers follow pgbench: / truncates toward zero and % takes the dividend's sign (C's rules).
Only integer expressions are accepted (pgbench also has doubles).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from random import Random

from txnlab.errors import TxnlabError

Variables = dict[str, object]  # name -> int (from \set) or str (a \gset column's text)
Evaluate = Callable[[Variables, Random], int]

BUILTIN_VARIABLES = ("client_id", "scale")
NAME = re.compile(r"[A-Za-z0-9_]+")
VARIABLE = re.compile(r"(?<!:):([A-Za-z0-9_]+)")  # `::type` casts are not variables
TRANSACTION_START = ("BEGIN", "START TRANSACTION")
TRANSACTION_END = ("COMMIT", "END")


class ScriptError(TxnlabError):
    """A workload script that pgbench would refuse or that txnlab cannot run: `line` is
    1-based within the script; `problem` is one line."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class SetCommand:
    """`\\set name expression`."""

    line: int
    name: str
    evaluate: Evaluate


@dataclass(frozen=True)
class SqlCommand:
    """One SQL statement as sent (without its `;`), pre-split for substitution: `pieces`
    alternates literal text and variable names (text, name, text, ..., text). `gset`: the
    prefix of a `\\gset` (\"\" for none), or None for a statement whose rows are ignored."""

    line: int
    text: str
    pieces: tuple[str, ...]
    gset: str | None = None

    def __post_init__(self) -> None:  # the template render() fills: literal % doubled, a %s per variable
        template = "%s".join(piece.replace("%", "%%") for piece in self.pieces[0::2])
        object.__setattr__(self, "_template", template)
        object.__setattr__(self, "_names", self.pieces[1::2])

    def render(self, variables: Variables) -> str:
        """The statement with every `:name` replaced by its value (ScriptError if unset)."""
        try:
            return self._template % tuple(map(variables.__getitem__, self._names))  # type: ignore[attr-defined]
        except KeyError as missing:
            raise ScriptError(self.line, f"unknown variable :{missing.args[0]}") from None


Command = SetCommand | SqlCommand


@dataclass(frozen=True)
class Script:
    """A parsed workload script: its commands in order, and its text, which pgbench runs."""

    text: str
    commands: tuple[Command, ...]

    @property
    def statements(self) -> tuple[SqlCommand, ...]:
        return tuple(c for c in self.commands if isinstance(c, SqlCommand))


def parse_script(text: str) -> Script:
    """Parse a workload script (pure: no I/O). Raises ScriptError with the script-relative
    line of the first problem: an unknown backslash command, a bad expression, an unknown
    variable, an unterminated statement, no statement, or not exactly one transaction."""
    commands: list[Command] = []
    known: set[str] = set(BUILTIN_VARIABLES)
    gset_seen = False  # a \gset's columns are known only at run time
    pending: list[str] = []
    pending_line = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        stripped = line.strip()
        if not pending and not stripped:
            continue
        if not pending and stripped.startswith("\\"):
            word, _, rest = stripped[1:].partition(" ")
            if word != "set":
                raise ScriptError(number, f"unsupported command \\{word} (only \\set and \\gset after a SELECT)")
            name, _, expression = rest.strip().partition(" ")
            if not NAME.fullmatch(name) or not expression.strip():
                raise ScriptError(number, "expected \\set NAME EXPRESSION")
            evaluate = _Parser(expression, number, known if not gset_seen else None).parse()
            commands.append(SetCommand(number, name, evaluate))
            known.add(name)
            continue
        if not pending:
            pending_line = number
        gset = _GSET.search(line)
        if gset is not None:
            pending.append(line[: gset.start()])
            prefix = (gset.group(1) or "").strip()
            if prefix and not NAME.fullmatch(prefix):
                raise ScriptError(number, f"bad \\gset prefix {prefix!r}")
            commands.append(_statement(pending, pending_line, known, gset_seen, prefix))
            gset_seen, pending = True, []
            continue
        if "\\" in _outside_quotes(line):
            raise ScriptError(number, "a backslash command must start its own line (or end a SELECT: \\gset)")
        rest = line
        while True:
            end = _statement_end(rest)
            if end is None:
                pending.append(rest)
                break
            pending.append(rest[:end])
            if "".join(pending).strip():
                commands.append(_statement(pending, pending_line, known, gset_seen, None))
            pending, rest = [], rest[end + 1:]
            if not rest.strip():
                break
            pending_line = number
    if pending and "".join(pending).strip():
        raise ScriptError(pending_line, "statement not ended by ';'")
    script = Script(text, tuple(commands))
    _check_transaction(script)
    return script


_GSET = re.compile(r"\\gset(?:\s+(\S+))?\s*$")


def _strip_comment(line: str) -> str:
    """The line without a `--` comment outside quotes."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif line.startswith("--", index):
            return line[:index]
    return line


def _outside_quotes(line: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "", line)


def _statement_end(text: str) -> int | None:
    """Index of the first `;` outside quotes, or None."""
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == ";":
            return index
    return None


def _statement(lines: list[str], line: int, known: set[str], gset_seen: bool, gset: str | None) -> SqlCommand:
    text = "\n".join(part.strip() for part in lines if part.strip())
    pieces = VARIABLE.split(text)
    if not gset_seen:
        for name in pieces[1::2]:
            if name not in known:
                raise ScriptError(line, f"unknown variable :{name} (set it with \\set or \\gset first)")
    return SqlCommand(line, text, tuple(pieces), gset)


def _check_transaction(script: Script) -> None:
    statements = script.statements
    if not statements:
        raise ScriptError(1, "the script has no SQL statement")
    words = [_first_words(s.text) for s in statements]
    starts = [i for i, w in enumerate(words) if w.startswith(TRANSACTION_START)]
    ends = [i for i, w in enumerate(words) if w.startswith(TRANSACTION_END) or w.startswith("ROLLBACK")]
    if len(statements) == 1 and not starts and not ends:
        return
    if starts != [0] or ends != [len(statements) - 1] or not words[-1].startswith(TRANSACTION_END):
        line = statements[0].line if starts != [0] else statements[-1].line
        raise ScriptError(line, "a workload is exactly one transaction: BEGIN; ... COMMIT; (or a single statement)")


def _first_words(sql: str) -> str:
    return " ".join(sql.upper().split()[:2])


# --- expressions -------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\d+)|:([A-Za-z0-9_]+)|([A-Za-z_]\w*)|(.))")


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero")
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _mod(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero")
    return a - _div(a, b) * b


class _Parser:
    """Recursive descent over pgbench's integer expression grammar, compiled to one Python
    lambda (evaluated per transaction: as cheap as the expression itself)."""

    def __init__(self, text: str, line: int, known: set[str] | None) -> None:
        self.tokens = [m.groups() for m in _TOKEN.finditer(text.strip())]
        self.position = 0
        self.line = line
        self.known = known  # None: a \\gset came before, variables are checked at run time

    def fail(self, problem: str) -> ScriptError:
        return ScriptError(self.line, f"bad expression: {problem}")

    def peek(self) -> str | None:
        if self.position >= len(self.tokens):
            return None
        number, var, word, other = self.tokens[self.position]
        return other or word or (":" + var if var else number)

    def take(self) -> tuple[str | None, ...]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def parse(self) -> Evaluate:
        source = self.sum()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()!r}")
        return eval(compile(f"lambda v, r: {source}", f"<\\set at line {self.line}>", "eval"), dict(_RUNTIME))

    def sum(self) -> str:
        left = self.product()
        while self.peek() in ("+", "-"):
            operator = self.take()[3]
            left = f"({left} {operator} {self.product()})"
        return left

    def product(self) -> str:
        left = self.unary()
        while self.peek() in ("*", "/", "%"):
            operator = self.take()[3]
            right = self.unary()
            left = f"({left} * {right})" if operator == "*" else f"{_HELPER[operator or '']}({left}, {right})"
        return left

    def unary(self) -> str:
        if self.peek() == "-":
            self.take()
            return f"(-{self.unary()})"
        if self.peek() == "+":
            self.take()
        return self.atom()

    def atom(self) -> str:
        if self.peek() is None:
            raise self.fail("ends too early")
        number, var, word, other = self.take()
        if number is not None:
            if self.peek() == ".":
                raise self.fail("only integers are supported")
            return str(int(number))
        if var is not None:
            if self.known is not None and var not in self.known:
                raise ScriptError(self.line, f"unknown variable :{var} (set it with \\set or \\gset first)")
            return f"_integer(v[{var!r}])"
        if word is not None:
            return self.call(word.lower())
        if other == "(":
            inner = self.sum()
            self.expect(")")
            return inner
        raise self.fail(f"unexpected {other!r}")

    def expect(self, token: str) -> None:
        if self.peek() != token:
            raise self.fail(f"expected {token!r}")
        self.take()

    def call(self, name: str) -> str:
        if self.peek() != "(":
            raise self.fail(f"unknown name {name!r} (variables are written :name)")
        self.take()
        arguments = [self.sum()]
        while self.peek() == ",":
            self.take()
            arguments.append(self.sum())
        self.expect(")")
        if name not in _FUNCTIONS:
            raise self.fail(f"unsupported function {name}() (random, abs, least, greatest)")
        arity, function = _FUNCTIONS[name]
        if arity is not None and len(arguments) != arity:
            raise self.fail(f"{name} takes {arity} argument{'s' if arity > 1 else ''}" + (" (lb, ub)" if name == "random" else ""))
        if len(arguments) == 1 and name in ("least", "greatest"):
            return arguments[0]
        return f"{function}({', '.join(arguments)})"


def _integer(value: object) -> int:
    """A variable's value as an integer (a \\gset column arrives as text)."""
    if value.__class__ is int:
        return value  # type: ignore[return-value]
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"not an integer: {value!r}") from None


_HELPER = {"/": "_div", "%": "_mod"}
# name -> (arity or None: one or more, the Python the call compiles to); r.randint takes both bounds
_FUNCTIONS: Mapping[str, tuple[int | None, str]] = {
    "random": (2, "r.randint"), "abs": (1, "abs"), "least": (None, "min"), "greatest": (None, "max"),
}
_RUNTIME = {"__builtins__": {}, "_div": _div, "_mod": _mod, "_integer": _integer, "abs": abs, "min": min, "max": max}
