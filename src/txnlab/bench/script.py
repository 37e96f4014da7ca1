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
Only integer expressions are accepted (pgbench also has doubles). random(lb, ub) maps one
uniform double u in [0, 1) to lb + int((ub - lb + 1) * u), as pgbench did before PostgreSQL 15
(since then it draws an unbiased integer from its own generator: the same distribution, up to a
bias below 2**-40 for any range a workload uses).

A script runs as ONE generated Python function per client (`Script.python_source` prints it,
`Script.compile` builds it): variables are locals, expressions inline Python, each statement an
f-string encoded once and sent through the caller's `_exec`, its status checked inline. A
transaction's random draws are made up front (`draw()`: one double per random() call of the
script, a fixed number) and handed to each try, so a retry replays them in order, as pgbench
restores its random state for a retry.
"""

from __future__ import annotations

import ast
import linecache
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

from txnlab.errors import TxnlabError


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
    """`\\set name expression`; `expression` is its Python source (variables `v_name`, the
    transaction's draws `_u0`, `_u1`, ...)."""

    line: int
    name: str
    expression: str
    text: str = ""  # as written, for the generated source's comments


@dataclass(frozen=True)
class SqlCommand:
    """One SQL statement as sent (without its `;`), pre-split for substitution: `pieces`
    alternates literal text and variable names (text, name, text, ..., text). `gset`: the
    prefix of a `\\gset` (\"\" for none), or None for a statement whose rows are ignored."""

    line: int
    text: str
    pieces: tuple[str, ...]
    gset: str | None = None

    def python(self) -> str:
        """The Python expression of the bytes sent: a bytes literal, or an f-string encoded."""
        if len(self.pieces) == 1:
            return repr(self.text.encode())
        literal = "".join(
            piece.replace("{", "{{").replace("}", "}}") if index % 2 == 0 else "{v_" + piece + "}"
            for index, piece in enumerate(self.pieces)
        )
        return f"f{literal!r}.encode()"


Command = SetCommand | SqlCommand


@dataclass(frozen=True)
class Script:
    """A parsed workload script: its commands in order, its text (which pgbench runs), and how
    many random() calls one try makes (`draws`)."""

    text: str
    commands: tuple[Command, ...]
    draws: int = 0

    @property
    def statements(self) -> tuple[SqlCommand, ...]:
        return tuple(c for c in self.commands if isinstance(c, SqlCommand))

    def python_source(self, client_id: int = 0) -> str:
        """The Python source of one client's transaction (see `compile` for what it expects)."""
        return _Generator(self, client_id).source()

    def compile(self, client_id: int, random: Callable[[], float], runtime: Mapping[str, object]) -> Compiled:
        """One client's transaction as Python functions. `random()` returns a uniform double in
        [0, 1) (random.Random.random). `runtime` gives the names the source calls: `_exec(sql:
        bytes)` sends a statement and returns its result; a result whose `.status` is not in
        `_OK` is handed to `_failed(result)`, which raises; `_gset(result, prefix, line)` returns
        the one row as {prefix + column: text}; `_abandon(exc)` runs on any exception of a try,
        before it propagates."""
        generator = _Generator(self, client_id)
        source = generator.source()
        namespace = {**_RUNTIME, **runtime, "_random": random}
        exec(compile(source, SOURCE_NAME, "exec"), namespace)
        linecache.cache[SOURCE_NAME] = (len(source), None, source.splitlines(True), SOURCE_NAME)  # tracebacks show it
        return Compiled(namespace["transaction"], namespace["draw"], generator.lines)  # type: ignore[arg-type]


SOURCE_NAME = "<workload script>"


@dataclass(frozen=True)
class Compiled:
    """A script compiled for one client: `transaction(draws)` runs one try with a transaction's
    draws (a tuple from `draw()`) and returns its last statement's result; `lines` maps a line
    of the generated source to the script's line."""

    transaction: Callable[[tuple[float, ...]], object]
    draw: Callable[[], tuple[float, ...]]
    lines: Mapping[int, int]

    def line_of(self, exc: BaseException) -> int | None:
        """The script line that was running when `exc` was raised in `transaction`, if it was."""
        tb: TracebackType | None = exc.__traceback__
        line = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == SOURCE_NAME:
                line = self.lines.get(tb.tb_lineno, line)
            tb = tb.tb_next
        return line


def parse_script(text: str) -> Script:
    """Parse a workload script (pure: no I/O). Raises ScriptError with the script-relative
    line of the first problem: an unknown backslash command, a bad expression, an unknown
    variable, an unterminated statement, no statement, or not exactly one transaction."""
    commands: list[Command] = []
    known: set[str] = set(BUILTIN_VARIABLES)
    integers: set[str] = set(BUILTIN_VARIABLES)  # surely integers: set by \set since the last \gset
    gset_seen = False  # a \gset's columns are known only at run time
    draws = 0
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
            parser = _Parser(expression, number, known if not gset_seen else None, integers, draws)
            commands.append(SetCommand(number, name, parser.parse(), stripped))
            draws = parser.draws
            known.add(name)
            integers.add(name)
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
            integers.clear()  # a column may overwrite any variable, with text
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
    script = Script(text, tuple(commands), draws)
    _check_transaction(script)
    return script


_GSET = re.compile(r"\\gset(?:\s+(\S+))?\s*$")


def _strip_comment(line: str) -> str:
    """The line without a `--` comment outside quotes."""
    start = _outside_quotes_find(line, "--")
    return line if start is None else line[:start]


def _outside_quotes(line: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "", line)


def _statement_end(text: str) -> int | None:
    """Index of the first `;` outside quotes, or None."""
    return _outside_quotes_find(text, ";")


def _outside_quotes_find(text: str, token: str) -> int | None:
    """Index of the first `token` outside '...' and "..." quotes, or None."""
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif text.startswith(token, index):
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


# A statement that chooses its transaction's isolation level: BEGIN / START TRANSACTION / SET
# TRANSACTION ... ISOLATION LEVEL, or a SET of the settings behind them. The run's --level is the
# level every row of the results is labelled with, so a script may not choose its own.
SETS_LEVEL = re.compile(r"\bISOLATION\s+LEVEL\b|\b(default_)?transaction_isolation\b", re.IGNORECASE)


def _check_transaction(script: Script) -> None:
    statements = script.statements
    if not statements:
        raise ScriptError(1, "the script has no SQL statement")
    for statement in statements:
        if SETS_LEVEL.search(_outside_quotes(statement.text)):
            raise ScriptError(statement.line, "the script sets an isolation level; txnlab bench runs it at each "
                                              "--level and labels the results with that level, so write plain BEGIN")
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
    """Recursive descent over pgbench's integer expression grammar, to one Python expression
    (inlined into the generated transaction). `integers`: the variables surely holding an
    integer (others may hold a \\gset column's text, converted at run time); `draws`: the index
    of the transaction's next random draw, advanced past this expression's."""

    def __init__(self, text: str, line: int, known: set[str] | None, integers: set[str], draws: int) -> None:
        self.tokens = [m.groups() for m in _TOKEN.finditer(text.strip())]
        self.position = 0
        self.line = line
        self.known = known  # None: a \\gset came before, variables are checked at run time
        self.integers = integers
        self.draws = draws
        self.temporaries = 0

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

    def parse(self) -> str:
        source = self.sum()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()!r}")
        return source

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
            left = f"({left} * {right})" if operator == "*" else self.divide(operator or "", left, right)
        return left

    def divide(self, operator: str, left: str, right: str) -> str:
        """C's / and % (toward zero): Python's // and % when the dividend is >= 0 and the divisor
        a positive literal, the common case, inline; otherwise a helper (which checks for 0)."""
        if not right.isdigit() or int(right) == 0:
            return f"{_HELPER[operator]}({left}, {right})"
        python = "//" if operator == "/" else "%"
        if left.lstrip("-").isdigit() or left.startswith("v_"):
            t = left
            return f"({t} {python} {right} if {t} >= 0 else -(-{t} {python} {right}))"
        self.temporaries += 1
        t = f"_t{self.line}_{self.temporaries}"
        return f"({t} {python} {right} if ({t} := {left}) >= 0 else -(-{t} {python} {right}))"

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
            return f"v_{var}" if var in self.integers else f"_integer(v_{var})"
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
        if name == "random":
            return self.random(*arguments)
        if len(arguments) == 1 and name in ("least", "greatest"):
            return arguments[0]
        return f"{function}({', '.join(arguments)})"

    def random(self, low: str, high: str) -> str:
        """pgbench's random(lb, ub) on the transaction's next draw `u`: lb + int((ub - lb + 1) * u)."""
        draw = f"_u{self.draws}"
        self.draws += 1
        lowest, highest = _literal(low), _literal(high)
        if lowest is None or highest is None:
            return f"_random_between({low}, {high}, {draw})"
        span = highest - lowest + 1
        if span <= 0:
            raise self.fail("empty range given to random")
        return f"int({span} * {draw})" if lowest == 0 else f"({lowest} + int({span} * {draw}))"


def _literal(source: str) -> int | None:
    """The value of an integer literal's source (`7`, `(-7)`), None for anything else."""
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, int) else None


def _integer(value: object) -> int:
    """A variable's value as an integer (a \\gset column arrives as text)."""
    if value.__class__ is int:
        return value  # type: ignore[return-value]
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"not an integer: {value!r}") from None


def _random_between(low: int, high: int, u: float) -> int:
    """random(lb, ub) with bounds known only at run time (pgbench refuses an empty range)."""
    if high < low:
        raise ValueError("empty range given to random")
    return low + int((high - low + 1) * u)


class _Unset:
    """A variable no \\set or \\gset has set yet (its use is an error at run time)."""

    def __repr__(self) -> str:
        return "_UNSET"


def _unknown(line: int, name: str) -> None:
    raise ScriptError(line, f"unknown variable :{name} (no \\set or \\gset column set it)")


_HELPER = {"/": "_div", "%": "_mod"}
# name -> (arity or None: one or more, the Python the call compiles to)
_FUNCTIONS: Mapping[str, tuple[int | None, str]] = {
    "random": (2, "_random_between"), "abs": (1, "abs"), "least": (None, "min"), "greatest": (None, "max"),
}
_RUNTIME: dict[str, object] = {
    "_div": _div, "_mod": _mod, "_integer": _integer, "_random_between": _random_between, "_unknown": _unknown, "_UNSET": _Unset(),
}


# --- the generated transaction --------------------------------------------------------------

class _Generator:
    """Writes a script's Python source (Script.python_source) and maps its lines back to the
    script's (`lines`: generated line -> script line)."""

    def __init__(self, script: Script, client_id: int) -> None:
        self.script = script
        self.client_id = client_id
        self.out: list[str] = []
        self.lines: dict[int, int] = {}

    def emit(self, code: str, line: int | None = None) -> None:
        self.out.append(code)
        if line is not None:
            self.lines[len(self.out)] = line

    def source(self) -> str:
        if self.out:
            return "\n".join(self.out) + "\n"
        script = self.script
        draws = ", ".join(f"_u{i}" for i in range(script.draws))
        used = [name for c in script.commands for name in _names(c)]
        bound = set(BUILTIN_VARIABLES)  # surely set here, else checked before use
        unset = sorted({n for n in used if n not in BUILTIN_VARIABLES and not _set_before_use(script, n)})
        self.emit(f"# One try of the workload's transaction for client {self.client_id}, generated by txnlab.bench.script.")
        self.emit("# Variables are v_NAME; _u0, _u1, ... are the transaction's random draws (the same for a retry).")
        self.emit("")
        self.emit("def draw():")
        calls = ", ".join("_random()" for _ in range(script.draws))
        self.emit(f"    return ({calls}{',' if script.draws == 1 else ''})")
        self.emit("")
        self.emit("")
        self.emit("def transaction(_draws):")
        if script.draws:
            self.emit(f"    {draws}{',' if script.draws == 1 else ''} = _draws")
        for name, value in (("client_id", self.client_id), ("scale", 1)):
            if name in used:
                self.emit(f"    v_{name} = {value}")
        for name in unset:
            self.emit(f"    v_{name} = _UNSET")
        self.emit("    try:")
        for index, command in enumerate(script.commands):
            self.emit(f"        # line {command.line}: {_first_line(command)}")
            for name in _names(command):
                if name not in bound and name in unset:
                    self.emit(f"        if v_{name} is _UNSET: _unknown({command.line}, {name!r})", command.line)
                bound.add(name)
            if isinstance(command, SetCommand):
                self.emit(f"        v_{command.name} = {command.expression}", command.line)
                bound.add(command.name)
                continue
            last = index == len(script.commands) - 1
            self.emit(f"        _res = _exec({command.python()})", command.line)
            self.emit("        if _res.status not in _OK: _failed(_res)", command.line)
            if command.gset is not None:
                self.emit(f"        _row = _gset(_res, {command.gset!r}, {command.line})", command.line)
                later = dict.fromkeys(n for c in script.commands[index + 1:] for n in _names(c))
                assigned = {*unset, *BUILTIN_VARIABLES, *(c.name for c in script.commands[:index] if isinstance(c, SetCommand))}
                for name in later:  # a variable \set later, before any read, needs nothing here
                    if name.startswith(command.gset) and name in assigned:
                        self.emit(f"        v_{name} = _row.get({name!r}, v_{name})", command.line)
            if last:
                self.emit("        return _res")
        self.emit("    except BaseException as _exc:")
        self.emit("        _abandon(_exc)")
        self.emit("        raise")
        return "\n".join(self.out) + "\n"


def _names(command: Command) -> list[str]:
    """The variables a command reads, in order."""
    if isinstance(command, SetCommand):
        return re.findall(r"\bv_([A-Za-z0-9_]+)", command.expression)
    return list(command.pieces[1::2])


def _set_before_use(script: Script, name: str) -> bool:
    """Whether a \\set of `name` comes before every read of it (no run-time check needed)."""
    for command in script.commands:
        if name in _names(command):
            return False
        if isinstance(command, SetCommand) and command.name == name:
            return True
    return True


def _first_line(command: Command) -> str:
    text = command.text.splitlines()[0]
    return text if len(text) <= 60 else text[:57] + "..."
