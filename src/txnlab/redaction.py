"""Keeping passwords out of everything txnlab prints.

Two layers. `describe_dsn` and `dsn_problem` build the only texts about a DSN that
txnlab itself composes: they name the server from a whitelist of keys (host, hostaddr,
port, user, dbname) and drop the DSN pieces libpq quotes in its parse errors. Then
`redacting_main`, around the CLI's `main()`, passes every text written to stdout or
stderr through a Redactor that masks every secret the command was handed: those in
the DSNs (--dsn, $TXNLAB_DSN, $DATABASE_URL), $PGPASSWORD, and libpq's password and
service files. So a libpq or server message quoting part of a DSN, or a password
libpq sent, cannot show it either.

Secrets are looked for in every form libpq accepts (libpq docs, "Connection
Strings"): `password`/`sslpassword` in keyword/value strings (quoted, with backslash
escapes), in URI userinfo (`postgresql://user:password@host`, also when the password
holds an unencoded `@`, `/` or `%` that libpq itself misreads) and in URI query
parameters, as written and percent-decoded, with their pieces, whether or not libpq
can parse the DSN. Pieces shorter than MIN_SECRET_LENGTH, and a password equal to the
user name, are not masked (see `secrets_given`). Standard output, which carries values
the server returned, is masked only of whole passwords of STDOUT_MIN_SECRET_LENGTH or
more (see `redacted_output`).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar
from urllib.parse import unquote

import psycopg2
import psycopg2.extensions

DSN_VARIABLES = ("TXNLAB_DSN", "DATABASE_URL")
PASSWORD_VARIABLES = ("PGPASSWORD",)
SHOWN_KEYS = ("host", "hostaddr", "port", "user", "dbname")  # a whitelist: new secret keys stay hidden
SECRET_KEY = re.compile(r"(?:ssl)?password", re.IGNORECASE)
MASK = "***"
MIN_SECRET_LENGTH = 3  # shorter pieces of a password would mask ordinary words
# Standard output carries the product (values the server returned, SQL), where masking a
# short string such as "100" would falsify what the server did; txnlab itself never writes
# a DSN there. So standard output masks only secrets at least this long.
STDOUT_MIN_SECRET_LENGTH = 8

_URI = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)
_KEYWORD_VALUE = re.compile(r"(?:^|\s)(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'?|(?:[^\s\\]|\\.)*)", re.IGNORECASE)
_KEYWORD_RAW = re.compile(r"(?:^|\s)(?:ssl)?password\s*=\s*(\S+)", re.IGNORECASE)  # as typed, even if malformed
_QUERY_VALUE = re.compile(r"[?&](?:ssl)?password=([^&]*)", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"]*"')


def describe_dsn(dsn: str) -> str:
    """Which server a DSN names, for a message: host, hostaddr, port, user, dbname; nothing else."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except (psycopg2.ProgrammingError, UnicodeEncodeError):
        return "an unparsable DSN"
    shown = " ".join(f"{key}={_printable(params[key])}" for key in SHOWN_KEYS if params.get(key))
    return shown or "libpq defaults"


def _printable(value: str) -> str:
    """A value on one line: control characters written as escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in value)


def dsn_problem(exc: psycopg2.ProgrammingError | UnicodeEncodeError) -> str:
    """libpq's reason for rejecting a DSN, without the parts of the DSN it quotes."""
    if isinstance(exc, UnicodeEncodeError):  # bytes that are not UTF-8 in argv or the environment
        return "it holds bytes that are not UTF-8 text"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid DSN"
    text = text.split(': "', 1)[0]  # libpq ends most of these messages with the DSN, quoted
    for quoted in _QUOTED.finditer(text):  # keep quoted punctuation ("=", "]"); a quoted piece of
        if len(quoted[0]) > 3:  # the DSN may hold quotes itself: hide up to the last one
            text = text[: quoted.start()] + '"…"' + text[text.rindex('"') + 1 :]
            break
    if "percent-encoded" in text:
        text += " (write a % in a URI as %25, an @ as %40)"
    return text


def secrets_in_dsn(dsn: str) -> set[str]:
    """Every text that may be a password in `dsn`, as libpq reads it and as a person meant it."""
    found = passwords_in_dsn(dsn)
    if _URI.match(dsn):
        found.update(_uri_userinfo_passwords(dsn))
        found.update(match.group(1) for match in _QUERY_VALUE.finditer(dsn))
    else:
        for match in _KEYWORD_VALUE.finditer(dsn):
            value = match.group(1)
            if value.startswith("'"):
                value = value[1:-1] if len(value) > 1 and value.endswith("'") else value[1:]
            found.update({value, re.sub(r"\\(.)", r"\1", value)})
        found.update(match.group(1) for match in _KEYWORD_RAW.finditer(dsn))
    return _with_pieces(found)


def users_in_dsn(dsn: str) -> set[str]:
    """The user names a DSN gives: as libpq reads it and, in a URI, as written before the first `:`."""
    try:
        users = {psycopg2.extensions.parse_dsn(dsn).get("user") or ""}
    except (psycopg2.ProgrammingError, UnicodeEncodeError):
        users = set()
    if _URI.match(dsn):
        users.add(unquote(_URI.sub("", dsn, count=1).partition(":")[0]))
    return users - {""}


def _uri_userinfo_passwords(uri: str) -> set[str]:
    """Candidates for the password in `scheme://user:password@host`: the text after the first
    `:` up to each `@` (a person may have left an `@` unencoded, where libpq stops at the first)."""
    rest = _URI.sub("", uri, count=1)
    user_end = rest.find(":")
    if user_end < 0:
        return set()
    candidates = set()
    at = rest.find("@", user_end)
    while at >= 0:
        candidates.add(rest[user_end + 1:at])
        at = rest.find("@", at + 1)
    return candidates


def _with_pieces(candidates: Iterable[str]) -> set[str]:
    """The candidates, percent-decoded too, and their pieces between the characters at which
    libpq cuts a misread URI (`@`, `/`, `:`, `,`, `?`, `[`, `]`) or a keyword string (space, quotes)."""
    found = set()
    for candidate in candidates:
        for form in {candidate, unquote(candidate)}:
            found.add(form)
            found.update(re.split(r"[@/:,?\[\]\s'\"]+", form))
    return {secret for secret in found if len(secret) >= MIN_SECRET_LENGTH}


def secrets_in_libpq_files(environ: Mapping[str, str]) -> set[str]:
    """The passwords libpq may send on its own, from its password file ($PGPASSFILE, else
    ~/.pgpass) and its service file ($PGSERVICEFILE, else ~/.pg_service.conf): a server may
    quote back what it was sent."""
    home = Path(environ.get("HOME") or Path.home())
    found = _pgpass_passwords(Path(environ.get("PGPASSFILE") or home / ".pgpass"))
    found |= _service_passwords(Path(environ.get("PGSERVICEFILE") or home / ".pg_service.conf"))
    return {secret for secret in found if len(secret) >= MIN_SECRET_LENGTH}


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _pgpass_passwords(path: Path) -> set[str]:
    """Lines `hostname:port:database:username:password`; `\\:` and `\\\\` are escapes (libpq docs)."""
    fields = (re.split(r"(?<!\\):", line, maxsplit=4) for line in _read_lines(path) if not line.startswith("#"))
    return {re.sub(r"\\(.)", r"\1", parts[4]) for parts in fields if len(parts) == 5}


def _service_passwords(path: Path) -> set[str]:
    """`password=` and `sslpassword=` lines of a connection service file."""
    pairs = (line.partition("=") for line in _read_lines(path))
    return {value.strip() for key, _, value in pairs if SECRET_KEY.fullmatch(key.strip())}


def passwords_in_dsn(dsn: str) -> set[str]:
    """The passwords libpq itself reads from `dsn` (`password`, `sslpassword`), whole: what it may
    send, so what a server may quote back. None when libpq cannot parse the DSN."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except (psycopg2.ProgrammingError, UnicodeEncodeError):
        return set()
    return {value for key, value in params.items() if SECRET_KEY.fullmatch(key) and value}


def _dsns_given(argv: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """The DSNs a command was handed: --dsn values, $TXNLAB_DSN, $DATABASE_URL."""
    dsns = [environ[name] for name in DSN_VARIABLES if environ.get(name)]
    words = list(argv)
    for index, word in enumerate(words):
        if word == "--dsn" and index + 1 < len(words):
            dsns.append(words[index + 1])
        elif word.startswith("--dsn="):
            dsns.append(word.removeprefix("--dsn="))
    return dsns


def secrets_given(argv: Iterable[str], environ: Mapping[str, str], *, whole_only: bool = False) -> set[str]:
    """The secrets a command was handed: in --dsn values, $TXNLAB_DSN, $DATABASE_URL, $PGPASSWORD,
    and in libpq's password and service files; none equal to a user name it was given.

    `whole_only`: of the DSNs, only the passwords libpq reads, whole (`passwords_in_dsn`),
    without the guesses and pieces `secrets_in_dsn` adds for libpq's parse errors."""
    dsns = _dsns_given(argv, environ)
    found = {environ[name] for name in PASSWORD_VARIABLES if len(environ.get(name, "")) >= MIN_SECRET_LENGTH}
    found |= secrets_in_libpq_files(environ)
    users = {environ.get("PGUSER", "")}
    for dsn in dsns:
        found |= passwords_in_dsn(dsn) if whole_only else secrets_in_dsn(dsn)
        users |= users_in_dsn(dsn)
    # Messages name the user on purpose; a password equal to it (postgres:postgres, the README's
    # txnlab:txnlab) is no secret from anyone who reads the user name, and masking it would turn
    # txnlab's own name in every line into ***.
    return found - users


class Redactor:
    """Replaces each secret by `***` in a text; the longest first, so pieces cannot unmask a whole."""

    def __init__(self, secrets: Iterable[str]) -> None:
        ordered = sorted(set(secrets), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text


class RedactingStream:
    """A text stream that writes through a Redactor to the stream it wraps (stdout or stderr)."""

    buffer = None  # no way around the redactor: click then writes text here, not bytes below it

    def __init__(self, stream: TextIO, redact: Redactor) -> None:
        self._stream = stream
        self._redact = redact

    def write(self, text: str) -> int:
        self._stream.write(self._redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, flush, encoding...: the wrapped stream's
        return getattr(self._stream, name)


@contextmanager
def redacted_output(argv: Iterable[str], environ: Mapping[str, str]) -> Iterator[Redactor]:
    """While inside, everything written to sys.stderr is scrubbed of the secrets the command
    was given. sys.stdout only of whole passwords (as libpq reads them) at least
    STDOUT_MIN_SECRET_LENGTH long: a piece of a password, or a guess at one in a DSN libpq
    misreads (`postgresql://u:pw@host/postgres?application_name=a@b` yields "postgres"), is
    an ordinary word that a table or a value may hold, and libpq's parse errors, which quote
    such pieces, never go to stdout."""
    argv = list(argv)
    redact = Redactor(secrets_given(argv, environ))
    whole = secrets_given(argv, environ, whole_only=True)
    redact_output = Redactor(s for s in whole if len(s) >= STDOUT_MIN_SECRET_LENGTH)
    saved = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(sys.stdout, redact_output)  # type: ignore[assignment]
    sys.stderr = RedactingStream(sys.stderr, redact)  # type: ignore[assignment]
    try:
        yield redact
    finally:
        sys.stdout, sys.stderr = saved


F = TypeVar("F", bound=Callable[..., Any])


def redacting_main(main: F) -> F:
    """Decorates the CLI entry point `main(argv=None)`: all it prints goes through `redacted_output`."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> Any:
        with redacted_output(sys.argv[1:] if argv is None else argv, os.environ):
            return main(argv)

    return wrapper  # type: ignore[return-value]
