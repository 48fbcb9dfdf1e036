"""deploy/compose.yaml: the services, their health checks and the PgBouncer profile."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.deploy.conftest import DEPLOY
from tests.deploy.conftest import SERVICE

COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
ORGSERVICES = ("orgservice", "orgservice-pgbouncer")


def environment(service: str) -> dict[str, str]:
    variables: dict[str, str] = SERVICES[service]["environment"]
    return variables


def database_host(url: str) -> str:
    parsed = make_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    return str(parsed.host)


def test_services_and_profiles() -> None:
    profiles = {name: service.get("profiles", []) for name, service in SERVICES.items()}
    assert profiles == {
        "postgres": [],
        "orgservice": [],
        "pgbouncer": ["pgbouncer"],
        "orgservice-pgbouncer": ["pgbouncer"],
    }


@pytest.mark.parametrize("name", ["postgres", "pgbouncer", *ORGSERVICES])
def test_every_service_has_a_health_check(name: str) -> None:
    test = SERVICES[name]["healthcheck"]["test"]
    assert test[0] == "CMD"


@pytest.mark.parametrize("name", ORGSERVICES)
def test_orgservice_reports_readiness_and_waits_for_its_database(name: str) -> None:
    service = SERVICES[name]
    command = service["healthcheck"]["test"][1:]
    assert command[:2] == ["orgservice", "health"]
    assert command[command.index("--service") + 1] == SERVICE
    assert all(
        dependency["condition"] == "service_healthy"
        for dependency in service["depends_on"].values()
    )
    assert environment(name)["ORGSERVICE_METRICS_PORT"] == "9464"
    # Stopping must leave the server its shutdown grace (plus the 2 s it may take after).
    grace = float(environment(name)["ORGSERVICE_SHUTDOWN_GRACE"])
    assert float(service["stop_grace_period"].removesuffix("s")) > grace + 2


def test_direct_instance_uses_postgres_and_publishes_its_ports() -> None:
    assert database_host(environment("orgservice")["ORGSERVICE_DATABASE_URL"]) == "postgres"
    assert SERVICES["orgservice"]["ports"] == ["50051:50051", "9464:9464"]


def test_instances_share_the_page_token_secret() -> None:
    secrets = {environment(name)["ORGSERVICE_PAGE_TOKEN_SECRET"] for name in ORGSERVICES}
    assert len(secrets) == 1


def test_pgbouncer_pools_transactions_and_fails_fast() -> None:
    pgbouncer = SERVICES["pgbouncer"]
    image, _, tag = pgbouncer["image"].partition(":")
    assert image == "edoburu/pgbouncer"
    assert tag not in {"", "latest"}
    settings = environment("pgbouncer")
    assert settings["POOL_MODE"] == "transaction"
    assert float(settings["QUERY_WAIT_TIMEOUT"]) <= 2
    assert float(settings["SERVER_LOGIN_RETRY"]) <= 2
    assert settings["DB_HOST"] == "postgres"


def test_pooled_instance_goes_through_pgbouncer_and_listens_directly() -> None:
    pooled = SERVICES["orgservice-pgbouncer"]
    command = pooled["command"]
    assert command[command.index("--database-pooler") + 1] == "pgbouncer"
    settings = environment("orgservice-pgbouncer")
    assert database_host(settings["ORGSERVICE_DATABASE_URL"]) == "pgbouncer"
    assert database_host(settings["ORGSERVICE_DATABASE_LISTEN_URL"]) == "postgres"
    assert "pgbouncer" in pooled["depends_on"]
