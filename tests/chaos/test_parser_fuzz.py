"""Property: a mutated catalogue file either loads, or is one line naming the file and
the line, exit 2; never a traceback, a hang, or a burst of memory (issue 8, item 11).

Hypothesis draws a catalogue file and one to three mutations (parser_mutations.py:
deleted, duplicated and swapped lines, lists and maps where text belongs, deep
nesting, alias bombs, control characters, invalid UTF-8, huge values, truncation).
Each input goes through the real CLI entry (`txnlab show FILE`, in this process),
which calls the real loader. Derandomized, so CI sees the same examples on
every run; benchmarks/parser_trial.py is the big version of the same trial.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import resource
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parser_mutations import MUTATIONS, YAML_FILES, mutate

from txnlab.cli import main
from txnlab.scenario.yaml_source import MAX_FILE_BYTES

TIME_LIMIT_S = 1.0  # CPU seconds per input; the slowest (256 KB of `[`) takes about 0.5 s
MEMORY_BUDGET = 256 * 1024 * 1024  # address space an input may add; an alias bomb took 3.5 GB
FUZZ = settings(
    max_examples=60, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Hang(Exception):
    """Raised by the alarm: a load that would have hung."""


@contextlib.contextmanager
def bounded(seconds: float, memory: int) -> Iterator[None]:
    """Fail instead of hanging CI past `seconds`, or swapping past `memory` more bytes
    of address space (MemoryError, which the CLI would print as a traceback)."""
    def _raise(signum: int, frame: object) -> None:
        raise Hang(f"still loading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    limit = in_use + memory if hard == resource.RLIM_INFINITY else min(in_use + memory, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


def show(path: Path) -> tuple[int, str, str]:
    """`txnlab show PATH` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["show", str(path)])
        except SystemExit as exit_:
            return int(exit_.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def check_one(data: bytes, name: str) -> None:
    """The property, for one input, through `txnlab show FILE` (which loads it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        started = time.process_time()  # CPU time: the work done, whatever the machine's load
        with bounded(4 * TIME_LIMIT_S, MEMORY_BUDGET):
            code, out, err = show(path)
        elapsed = time.process_time() - started
    assert elapsed < TIME_LIMIT_S, f"took {elapsed:.2f} s"
    if code == 0:
        assert err == "" and out.strip()
        return
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    if len(data) <= MAX_FILE_BYTES:  # only a file too large has no line to point at
        assert re.match(re.escape(f"txnlab: error: {path}:") + r"[1-9]\d*: \S", err), err
    else:
        assert err.startswith(f"txnlab: error: {path}: "), err
    assert len(err) < len(str(path)) + 400, "a value is echoed whole"


@FUZZ
@given(
    original=st.sampled_from(YAML_FILES),
    rnd=st.randoms(use_true_random=False),
    count=st.integers(min_value=1, max_value=3),
)
def test_a_mutated_catalogue_file_loads_or_is_one_line_naming_file_and_line(
    original: Path, rnd: random.Random, count: int
) -> None:
    data, _names = mutate(original.read_bytes(), rnd, count)
    check_one(data, original.name)


@FUZZ
@given(mutation=st.sampled_from(sorted(MUTATIONS)), rnd=st.randoms(use_true_random=False))
def test_each_kind_of_damage_alone_loads_or_is_one_line(mutation: str, rnd: random.Random) -> None:
    """Every mutation kind is drawn on its own too, so none is left to chance."""
    original = YAML_FILES[rnd.randrange(len(YAML_FILES))]
    check_one(MUTATIONS[mutation](original.read_bytes(), rnd), original.name)
