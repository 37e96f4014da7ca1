"""docker/compose.yaml offers PostgreSQL 13 to 18 on distinct ports (no Docker engine runs
here, so the file is checked, not started)."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "docker" / "compose.yaml"


def test_compose_offers_postgresql_13_to_18_each_on_its_own_port() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    versions = {name: service["image"].split(":")[1] for name, service in services.items()}
    assert versions == {f"postgres{v}": str(v) for v in range(13, 19)}
    ports = {name: service["ports"][0].split(":")[0] for name, service in services.items()}
    assert sorted(ports.values()) == [f"54{v}" for v in range(13, 19)]
    assert ports["postgres16"] == "5416"


def test_compose_services_have_a_role_that_may_create_databases_and_a_healthcheck() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, service in services.items():
        assert service["environment"]["POSTGRES_USER"] == "txnlab", name  # the image's superuser
        assert "pg_isready" in " ".join(service["healthcheck"]["test"]), name
