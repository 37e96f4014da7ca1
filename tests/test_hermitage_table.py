"""The Hermitage table, derived from live runs, equals PostgreSQL's documented behaviour.

The documented table is written out here on its own, from Hermitage's PostgreSQL results
(READ UNCOMMITTED behaves as READ COMMITTED in PostgreSQL), so this test checks the
scenario files' expectations against an independent source rather than against themselves.
"""

from __future__ import annotations

import pytest

from txnlab.checks import check
from txnlab.levels import Level
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue

POSSIBLE, PREVENTED = True, False
RC_RR_SER = {
    # anomaly: (read committed, repeatable read, serializable) -- does the anomaly happen?
    "G0": (PREVENTED, PREVENTED, PREVENTED),
    "G1a": (PREVENTED, PREVENTED, PREVENTED),
    "G1b": (PREVENTED, PREVENTED, PREVENTED),
    "G1c": (PREVENTED, PREVENTED, PREVENTED),
    "OTV": (PREVENTED, PREVENTED, PREVENTED),
    "PMP": (POSSIBLE, PREVENTED, PREVENTED),
    "PMP-write": (POSSIBLE, PREVENTED, PREVENTED),
    "P4": (POSSIBLE, PREVENTED, PREVENTED),
    "G-single": (POSSIBLE, PREVENTED, PREVENTED),
    "G-single-dependencies": (POSSIBLE, PREVENTED, PREVENTED),
    "G-single-write-1": (POSSIBLE, PREVENTED, PREVENTED),
    "G-single-write-2": (PREVENTED, PREVENTED, PREVENTED),
    "G2-item": (POSSIBLE, POSSIBLE, PREVENTED),
    "G2": (POSSIBLE, POSSIBLE, PREVENTED),
    "G2-two-edges": (POSSIBLE, POSSIBLE, PREVENTED),
}
DOCUMENTED = {
    (anomaly, level): happens
    for anomaly, (rc, rr, ser) in RC_RR_SER.items()
    for level, happens in (
        (Level.READ_UNCOMMITTED, rc), (Level.READ_COMMITTED, rc), (Level.REPEATABLE_READ, rr), (Level.SERIALIZABLE, ser),
    )
}


def test_the_catalogue_has_every_hermitage_test_of_postgresql() -> None:
    anomalies = {s.anomaly.name for s in Catalogue().with_tag("hermitage") if s.anomaly}
    assert anomalies == set(RC_RR_SER)


@pytest.mark.parametrize(("anomaly", "level"), [pytest.param(a, lvl, id=f"{a}[{lvl.value}]") for a, lvl in DOCUMENTED])
def test_hermitage_anomaly_happens_exactly_where_postgresql_documents_it(
    lab: Lab, catalogue: Catalogue, anomaly: str, level: Level
) -> None:
    scenario = next(s for s in catalogue.with_tag("hermitage") if s.anomaly and s.anomaly.name == anomaly)
    verdict = check(scenario, lab.run(scenario, level))
    assert verdict.anomaly_observed is DOCUMENTED[(anomaly, level)], verdict.outcome
