"""Which specs to run, and the expected outputs each one is compared with.

The layout is PostgreSQL's (src/test/isolation): `specs/NAME.spec` beside `expected/NAME.out`.
As pg_regress does (pg_regress.c, results_differ), NAME_0.out ... NAME_9.out are accepted
alternatives: an output matching any one of them passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from txnlab.errors import UsageError

ALTERNATIVES = range(10)  # NAME_0.out ... NAME_9.out, as pg_regress looks for them


@dataclass(frozen=True)
class SpecCase:
    """One spec to run: its name (the file's stem), its file, and the expected outputs
    that exist for it (NAME.out first, then NAME_N.out in N's order; empty when none)."""

    name: str
    path: Path
    expected_dir: Path
    expected: tuple[Path, ...]


def find_specs(paths: list[Path]) -> list[Path]:
    """The spec files PATHs name, in the order given; a directory gives its `*.spec` files
    by name, or, when it has none, those of its `specs/` folder.

    Raises UsageError (exit 2) for a path that does not exist, a file that is not a
    `.spec`, a directory that cannot be read or holds no spec, and two different specs
    with the same name (their outputs would overwrite each other)."""
    found: list[Path] = []
    for path in paths:
        found.extend(_specs_at(path))
    unique: dict[str, Path] = {}
    for spec in found:
        other = unique.setdefault(spec.stem, spec)
        if other.resolve() != spec.resolve():
            raise UsageError(f"two specs are named {spec.stem}: {other} and {spec}")
    return list(unique.values())


def _specs_at(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix != ".spec":
            raise UsageError(f"{path}: not a .spec file")
        return [path]
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    for folder in (path, path / "specs"):
        try:
            specs = sorted(p for p in folder.glob("*.spec") if p.is_file()) if folder.is_dir() else []
        except OSError as exc:
            raise UsageError(f"{folder}: cannot read the directory: {exc.strerror}") from None
        if specs:
            return specs
    if not _readable(path):
        raise UsageError(f"{path}: cannot read the directory")
    raise UsageError(f"{path}: no .spec files in it (nor in {path / 'specs'})")


def _readable(folder: Path) -> bool:
    try:
        next(folder.iterdir(), None)
    except OSError:
        return False
    return True


def expected_dir_for(spec: Path, expected: Path | None) -> Path:
    """Where the spec's expected outputs are: `expected` when given, else `../expected`
    beside the spec's folder, as in PostgreSQL's tree."""
    return expected if expected is not None else spec.resolve().parent.parent / "expected"


def expected_outputs(name: str, folder: Path) -> tuple[Path, ...]:
    """NAME.out and the alternatives NAME_0.out ... NAME_9.out that exist in `folder`."""
    candidates = [folder / f"{name}.out", *(folder / f"{name}_{n}.out" for n in ALTERNATIVES)]
    return tuple(p for p in candidates if p.is_file())


def spec_cases(paths: list[Path], expected: Path | None) -> list[SpecCase]:
    """The specs PATHs name with their expected outputs; UsageError (exit 2) for bad input,
    including an `--expected` folder that does not exist."""
    if expected is not None and not expected.is_dir():
        raise UsageError(f"--expected {expected}: no such directory")
    cases = []
    for spec in find_specs(paths):
        folder = expected_dir_for(spec, expected)
        cases.append(SpecCase(spec.stem, spec, folder, expected_outputs(spec.stem, folder)))
    return cases
