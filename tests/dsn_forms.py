"""DSNs carrying a password, in every form libpq accepts and in the broken forms people type,
for the redaction tests: the password is made of distinctive words ("pw" and 4 to 8 letters
or digits) joined by the characters that break DSN parsing, so that a test can tell any
piece of it in the output."""

from __future__ import annotations

import io
import os
import string
from pathlib import Path
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock
from urllib.parse import quote

import pytest
from hypothesis import strategies as st

from txnlab.cli import main

SEPARATORS = ["%", "%zz", "%25", "@", "[", "]", ":", "/", "?", "#", "&", "=", " ", "'", '"', "\\", ",", "%00"]
WORDS = st.text(string.ascii_letters + string.digits, min_size=4, max_size=8).map(lambda w: "pw" + w)


@st.composite
def passwords(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A password and the words in it that must never be printed."""
    words = draw(st.lists(WORDS, min_size=1, max_size=3))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(words) - 1, max_size=len(words) - 1))
    lead = draw(st.sampled_from(["", *SEPARATORS]))
    text = lead + words[0] + "".join(sep + word for sep, word in zip(seps, words[1:]))
    return text, words


def keyword_quoted(value: str) -> str:
    """A keyword/value string value, quoted as libpq reads it (backslash escapes ' and \\)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Each form: (server as keyword/value params, server as URI authority), password -> DSN.
Form = Callable[[dict[str, str], str], str]


def _uri_host(server: dict[str, str]) -> str:
    return f"{quote(server['host'], safe='')}:{server['port']}"


FORMS: dict[str, Form] = {
    "uri, password unencoded": lambda s, pw: f"postgresql://{s['user']}:{pw}@{_uri_host(s)}/postgres",
    "uri, password encoded": lambda s, pw: f"postgresql://{s['user']}:{quote(pw, safe='')}@{_uri_host(s)}/postgres",
    "postgres uri, multi-host": lambda s, pw: (
        f"postgres://{s['user']}:{quote(pw, safe='')}@{_uri_host(s)},{_uri_host(s)}/postgres"
    ),
    "uri, query password": lambda s, pw: f"postgresql://{s['user']}@{_uri_host(s)}/postgres?password={quote(pw)}",
    "uri, query password unencoded": lambda s, pw: f"postgresql://{s['user']}@{_uri_host(s)}/postgres?password={pw}",
    "uri, query sslpassword": lambda s, pw: (
        f"postgresql://{s['user']}@{_uri_host(s)}/postgres?sslpassword={quote(pw, safe='')}"
    ),
    "keyword/value, quoted": lambda s, pw: (
        f"host={keyword_quoted(s['host'])} port={s['port']} user={s['user']} password={keyword_quoted(pw)}"
    ),
    "keyword/value, unquoted": lambda s, pw: f"host={s['host']} port={s['port']} user={s['user']} password={pw}",
    "keyword/value, sslpassword": lambda s, pw: (
        f"host={keyword_quoted(s['host'])} port={s['port']} user={s['user']} sslpassword = {keyword_quoted(pw)}"
    ),
    "keyword/value, unclosed quote": lambda s, pw: f"host={s['host']} user={s['user']} password='{pw}",
    "uri, unclosed [": lambda s, pw: f"postgresql://{s['user']}:{pw}@[::1/postgres",
}

SOURCES = ("--dsn", "TXNLAB_DSN", "DATABASE_URL")
# A catalogue scenario by path: a name would load the whole catalogue (about 0.5 s) each time.
RUN = ["run", str(Path(__file__).resolve().parents[1] / "scenarios" / "atm-lost-update.yaml"), "--level", "rc"]


def run_txnlab(args: list[str], source: str, dsn: str, extra_env: dict[str, str] | None = None) -> tuple[int, str]:
    """`txnlab ARGS` in this process with the DSN given through `source`; (exit code, stdout + stderr)."""
    env = {name: value for name, value in os.environ.items() if name not in ("TXNLAB_DSN", "DATABASE_URL")}
    env.update(extra_env or {})
    if source == "--dsn":
        args = [*args, "--dsn", dsn]
    else:
        env[source] = dsn
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env, clear=True), redirect_stdout(out), redirect_stderr(err):
        with pytest.raises(SystemExit) as exited:
            main(args)
    return int(exited.value.code or 0), out.getvalue() + err.getvalue()
