"""The embedded server is reused only when it runs this installation's binaries: one left
running from a deleted or replaced virtualenv has lost its own files (plpgsql, ...)."""

from __future__ import annotations

from pathlib import Path

from txnlab.server.embedded import EmbeddedServer, installed_postgres


def test_a_server_from_another_installation_is_not_reused(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path)
    (tmp_path / "postmaster.opts").write_text('/gone/venv/bin/postgres "-D" "x"\n')
    assert not server._runs_this_installation()
    (tmp_path / "postmaster.opts").write_text(f'{installed_postgres()} "-D" "x"\n')
    assert server._runs_this_installation()
    assert installed_postgres().exists()
