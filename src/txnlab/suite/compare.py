"""An output against its expected files: byte for byte, any alternative matching, else a
unified diff against the closest one (the one with the fewest differing lines), as
pg_regress does (pg_regress.c, results_differ: `diff -U3`, best alternative kept)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

CONTEXT_LINES = 3  # pg_regress's pretty_diff_opts: -U3


@dataclass(frozen=True)
class Comparison:
    """matched: the expected file the output equals byte for byte, or None; closest: the
    file the diff is against (the match itself when there is one); diff: a unified diff,
    '' when matched."""

    matched: Path | None
    closest: Path
    diff: str


def compare(output: str, expected: tuple[Path, ...], result_name: str) -> Comparison:
    """Compare `output` (text, encoded as UTF-8 for the byte comparison) with each file of
    `expected` (at least one), in order. `result_name` labels the output's side of the diff
    (its file under --results, say). Raises OSError when an expected file cannot be read."""
    produced = output.encode("utf-8")
    best: tuple[int, Path, str] | None = None
    for path in expected:
        wanted = path.read_bytes()
        if wanted == produced:
            return Comparison(path, path, "")
        diff = unified_diff(wanted.decode("utf-8", "replace"), output, str(path), result_name)
        changed = sum(1 for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        if best is None or changed < best[0]:
            best = (changed, path, diff)
    assert best is not None, "compare() needs at least one expected file"
    return Comparison(None, best[1], best[2])


def unified_diff(expected: str, got: str, expected_name: str, got_name: str) -> str:
    """`diff -U3 EXPECTED GOT` as pg_regress writes it into regression.diffs: a header line
    naming both files, then the hunks; a missing final newline is marked as diff marks it."""
    lines = difflib.unified_diff(
        _lines(expected), _lines(got), fromfile=expected_name, tofile=got_name, n=CONTEXT_LINES,
    )
    return f"diff -U3 {expected_name} {got_name}\n" + "".join(lines)


def _lines(text: str) -> list[str]:
    """Lines split at \\n only (diff's notion; a form feed in a value is not a line break)."""
    lines = [line + "\n" for line in text.split("\n")]
    if lines[-1] == "\n":
        lines.pop()  # the text ended with a newline
    else:
        lines[-1] = lines[-1][:-1] + "\n\\ No newline at end of file\n"
    return lines
