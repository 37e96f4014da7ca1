"""Rows a SELECT returned without their table columns (no RowDescription origins from the
driver) are a read the history says it did not record: its WHERE clause, re-evaluated,
never stands in for them, so such a run is never called serializable."""

from __future__ import annotations

from dataclasses import replace

from txnlab.history import analyse
from txnlab.history.coverage import UNPLACED
from txnlab.levels import Level
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue


def test_a_select_whose_rows_came_without_column_origins_is_an_unrecorded_read_not_a_serializable_history(
    lab: Lab, catalogue: Catalogue
) -> None:
    timeline = lab.run(catalogue.scenarios["hermitage-g-single"], Level.READ_COMMITTED)
    assert {a.name for a in analyse(timeline).anomalies} == {"G-single"}
    without = replace(timeline, events=[replace(e, column_origins=None) for e in timeline.events])
    analysis = analyse(without)
    assert analysis.anomalies == ()
    selects = {e.step for e in timeline.events if (e.status or "").startswith("SELECT") and e.rows}
    unplaced = {(r.step, r.table) for r in analysis.history.unrecorded if r.how == UNPLACED}
    assert selects and unplaced == {(step, "test") for step in selects}
