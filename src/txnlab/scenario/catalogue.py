"""Find scenarios: the packaged catalogue (the repository's `scenarios/` folder), the
scenarios a user wrote (in directories the user owns), or a file path.

The user's directories, most precedent first: `--dir DIR`, the current project's
`scenarios/` (when present), and `<user data dir>/scenarios` (platformdirs'
`user_data_dir("txnlab")`, e.g. `~/.local/share/txnlab/scenarios` on Linux). A user's
scenario with the name of a catalogue scenario replaces it: that is how `txnlab edit`
changes a catalogue scenario (it edits a copy in the user's directory), and `txnlab list`
says so. Drafts (`NAME.draft.yaml`, kept when an edit did not validate) are not scenarios.

From the user's folders only YAML files are scenarios by name: finding a name means
loading every file, and loading a `.py` file runs it, and a project's `scenarios/`
folder may hold Python files that are not txnlab's. A Python scenario of the user's runs
by its path (`txnlab run scenarios/retry.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from importlib import resources
from pathlib import Path

import platformdirs

from txnlab.errors import UsageError, did_you_mean
from txnlab.scenario.model import Scenario
from txnlab.scenario.python_source import load_python_scenario
from txnlab.scenario.spec_source import load_spec
from txnlab.scenario.validate import build_scenario
from txnlab.scenario.yaml_source import read_yaml

SCENARIO_SUFFIXES = (".yaml", ".yml", ".py", ".spec")
USER_SUFFIXES = (".yaml", ".yml")  # files of the user's folders that are scenarios by name (no .py: see above)
DRAFT_SUFFIX = ".draft"  # NAME.draft.yaml: an edit kept because it did not validate


def user_data_scenarios() -> Path:
    """The per-user scenario directory: platformdirs' user_data_dir("txnlab") / scenarios."""
    return Path(platformdirs.user_data_dir("txnlab")) / "scenarios"


def project_scenarios() -> Path | None:
    """The current project's `scenarios/` folder, if there is one that is the user's: not
    the catalogue's source in txnlab's own checkout (beside `src/txnlab`), installed or not."""
    project = Path.cwd() / "scenarios"
    if not project.is_dir() or (Path.cwd() / "src" / "txnlab" / "__init__.py").is_file():
        return None
    return project


def user_directories(chosen: Path | None = None) -> list[Path]:
    """Where the user's scenarios live, most precedent first: `chosen` (--dir), the project's
    ./scenarios (see `project_scenarios`), the user data directory. Directories that do not
    exist are left out."""
    candidates = [chosen, project_scenarios(), user_data_scenarios()]
    catalogue = default_catalogue_dir().resolve()
    found: list[Path] = []
    for directory in candidates:
        if directory is not None and directory.is_dir() and directory.resolve() not in (catalogue, *found):
            found.append(directory.resolve())
    return found


def writable_directory(chosen: Path | None = None) -> Path:
    """Where `txnlab new` and `txnlab edit` save: `chosen` (--dir), else the project's
    ./scenarios (see `project_scenarios`), else the user data directory (created when first
    written to)."""
    return chosen or project_scenarios() or user_data_scenarios()


def draft_path(target: Path) -> Path:
    """Where an edit of `target` that did not validate is kept: NAME.draft.yaml beside it."""
    return target.with_name(f"{target.stem}{DRAFT_SUFFIX}{target.suffix}")


def default_catalogue_dir() -> Path:
    """The catalogue inside an installed wheel, else `scenarios/` of the source checkout."""
    packaged = Path(str(resources.files("txnlab"))) / "catalogue"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "scenarios"


def load_scenario(path: Path) -> Scenario:
    """Load and validate one scenario file (YAML, Python, or an isolation test `.spec`)."""
    if path.suffix == ".py":
        return load_python_scenario(path)
    if path.suffix == ".spec":
        return load_spec(path)
    return build_scenario(read_yaml(path), path)


class Catalogue:
    """The scenarios of the catalogue folder and of the user's folders, by name.

    `user` lists the user's directories, most precedent first (see `user_directories`);
    a name found in several folders is the most precedent one's, and `replaced` says
    which folder's scenario it hides. Two files of one folder with one name are an error.
    """

    def __init__(self, directory: Path | None = None, user: Sequence[Path] = ()) -> None:
        self.directory = directory or default_catalogue_dir()
        self.user = list(user)
        self.origin: dict[str, Path] = {}  # scenario name -> the folder it was found in
        self.replaced: dict[str, Path] = {}  # scenario name -> the folder whose scenario it hides

    def files(self, directory: Path | None = None) -> Iterator[Path]:
        """Scenario files of one folder (default: the catalogue's), helpers and drafts left out;
        of a user's folder, only the YAML files."""
        suffixes = SCENARIO_SUFFIXES if directory in (None, self.directory) else USER_SUFFIXES
        for path in sorted((directory or self.directory).rglob("*")):
            if (
                path.suffix in suffixes
                and not path.name.startswith(("_", "."))
                and not path.stem.endswith(DRAFT_SUFFIX)
            ):
                yield path

    @cached_property
    def scenarios(self) -> dict[str, Scenario]:
        """Every scenario by name, the most precedent folder's first when names repeat."""
        loaded: dict[str, Scenario] = {}
        for directory in [self.directory, *reversed(self.user)]:  # least precedent first
            found: dict[str, Scenario] = {}
            for path in self.files(directory):
                scenario = load_scenario(path)
                if scenario.name in found:
                    raise UsageError(
                        f"{path}: scenario name {scenario.name!r} is already used by "
                        f"{found[scenario.name].source}"
                    )
                found[scenario.name] = scenario
            for name, scenario in found.items():
                if name in loaded:
                    self.replaced[name] = self.origin[name]
                loaded[name] = scenario
                self.origin[name] = directory
        return loaded

    def resolve(self, name_or_path: str) -> Scenario:
        """A catalogue name, or the path of a scenario file."""
        candidate = Path(name_or_path)
        if candidate.suffix in SCENARIO_SUFFIXES or candidate.exists():
            if not candidate.is_file():
                raise UsageError(f"no scenario file at {name_or_path}")
            if candidate.name.startswith("_"):
                raise UsageError(f"{name_or_path} is a helper module shared by scenarios (its name starts with _)")
            return load_scenario(candidate)
        if name_or_path in self.scenarios:
            return self.scenarios[name_or_path]
        hint = did_you_mean(name_or_path, self.scenarios, n=3)
        raise UsageError(f"no scenario named {name_or_path!r}; {hint}`txnlab list` shows them all")

    def with_tag(self, tag: str) -> list[Scenario]:
        """The scenarios tagged `tag`; a tag no scenario has is an error naming the known ones."""
        tagged = [s for s in self.scenarios.values() if tag in s.tags]
        if not tagged:
            known = sorted({t for s in self.scenarios.values() for t in s.tags})
            raise UsageError(f"no scenario is tagged {tag!r}; {did_you_mean(tag, known)}known tags: {', '.join(known)}")
        return tagged
