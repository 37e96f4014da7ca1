"""Load a Python scenario: a module in the catalogue with `SCENARIO` (the same document a
YAML file holds) and `play(run)`, which drives the sessions through the same engine.
Scenarios of one family may share code in a helper module beside them whose name starts
with an underscore (the catalogue does not list those). The import runs contained (see
txnlab.runner.contained): whatever the file's code does at import is one line, exit 2.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from txnlab.errors import ScenarioError
from txnlab.runner.contained import import_contained
from txnlab.scenario.model import Scenario
from txnlab.scenario.validate import build_scenario


def load_python_scenario(path: Path) -> Scenario:
    """Import the file (contained, with a timeout) and validate its SCENARIO; ScenarioError if wrong."""
    module_name = f"txnlab_scenario_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ScenarioError(str(path), "cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent))  # a scenario may import shared helpers (_name.py) beside it
    try:
        import_contained(partial(spec.loader.exec_module, module), path)
    except SyntaxError as exc:
        raise ScenarioError(str(path), f"Python syntax error: {exc.msg}", exc.lineno) from None
    finally:
        sys.path.remove(str(path.parent))
    document = getattr(module, "SCENARIO", None)
    play = getattr(module, "play", None)
    if not isinstance(document, Mapping):
        raise ScenarioError(str(path), "a Python scenario must define SCENARIO = {...}")
    if not callable(play):
        raise ScenarioError(str(path), "a Python scenario must define play(run)")
    return build_scenario(document, path, play=play, module=vars(module))
