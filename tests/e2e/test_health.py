"""Readiness follows the database: NOT_SERVING while PostgreSQL lacks the database,
SERVING again once it is back. Liveness stays SERVING throughout: a database outage is
no reason to restart the process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests.conftest import BACKENDS, POSTGRES_ADMIN_URL, new_postgres_database
from tests.e2e.conftest import SERVICE, HealthProbe, StartService, wait_until

LIVENESS = ""

pytestmark = pytest.mark.postgres_only

CHANGE_TIMEOUT = 10.0  # the server probes every 0.2 s


@dataclass(frozen=True)
class FreshDatabase:
    url: str
    name: str

    def _admin(self, statement: str) -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement.format(name=f'"{self.name}"'))

    def drop(self) -> None:
        self._admin("DROP DATABASE {name} WITH (FORCE)")

    def create(self) -> None:
        self._admin("CREATE DATABASE {name}")


@pytest.fixture
def database() -> Iterator[FreshDatabase]:
    """A new PostgreSQL database of this test's own, dropped afterwards."""
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL tests not selected (ORGSERVICE_TEST_DATABASES)")
    manager = new_postgres_database()
    with manager as url:
        yield FreshDatabase(url, manager.name)


def test_health_follows_database_reachability(
    start_service: StartService, database: FreshDatabase
) -> None:
    service = start_service("--database-url", database.url, "--health-interval", "0.2")
    probe = HealthProbe(service.port)
    try:
        assert probe.all_are("SERVING")

        database.drop()
        wait_until(lambda: probe.status(SERVICE) == "NOT_SERVING", CHANGE_TIMEOUT, "NOT_SERVING")
        assert probe.status(LIVENESS) == "SERVING"

        database.create()
        wait_until(lambda: probe.all_are("SERVING"), CHANGE_TIMEOUT, "SERVING again")
    finally:
        probe.close()
