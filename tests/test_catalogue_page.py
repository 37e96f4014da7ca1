"""docs/catalogue.md is living documentation: regenerated from the scenarios and a fresh run
on the server, it must equal the checked-in page."""

from __future__ import annotations

from pathlib import Path

import pytest

from txnlab.levels import ALL_LEVELS
from txnlab.render.catalogue_page import render_catalogue_page
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue
from txnlab.workflow import cells, run_cells

PAGE = Path(__file__).resolve().parents[1] / "docs" / "catalogue.md"


def test_the_checked_in_catalogue_page_matches_a_fresh_run(lab: Lab, catalogue: Catalogue) -> None:
    if not PAGE.exists():
        pytest.skip(f"{PAGE} is not there (tests run outside the repository)")
    fresh = render_catalogue_page(list(run_cells(lab, cells(catalogue.scenarios.values(), ALL_LEVELS))))
    assert fresh == PAGE.read_text(encoding="utf-8"), "docs/catalogue.md is out of date: run `txnlab docs`"
