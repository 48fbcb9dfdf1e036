"""Readiness follows the database: NOT_SERVING while PostgreSQL lacks the database,
SERVING again once it is back. Liveness stays SERVING throughout: a database outage is
no reason to restart the process. Check, Watch, `orgservice health` and the
orgservice_database_up gauge all tell the same story."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc

from tests.conftest import POSTGRES_ADMIN_URL
from tests.conftest import new_postgres_database
from tests.conftest import require_postgres_tests
from tests.e2e.conftest import SERVICE
from tests.e2e.conftest import HealthProbe
from tests.e2e.conftest import StartService
from tests.e2e.conftest import health_command
from tests.e2e.conftest import wait_until
from tests.e2e.prometheus import scrape_when
from tests.e2e.prometheus import value
from tests.support.processes import free_port

LIVENESS = ""

pytestmark = pytest.mark.postgres_only

CHANGE_TIMEOUT = 10.0  # the server probes every 0.2 s
FIRST_MESSAGE_TIMEOUT = 2.0  # Watch answers at once
STEADY_SECONDS = 1.5  # several probe intervals without a change: no message may come


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
    require_postgres_tests()
    manager = new_postgres_database()
    with manager as url:
        yield FreshDatabase(url, manager.name)


class HealthWatch:
    """One Health/Watch stream; a thread collects the statuses it delivers."""

    def __init__(self, port: int, service: str) -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._call = health_pb2_grpc.HealthStub(self._channel).Watch(
            health_pb2.HealthCheckRequest(service=service), timeout=120
        )
        self.statuses: list[str] = []
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        with contextlib.suppress(grpc.RpcError):  # cancelled by close()
            for reply in self._call:
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                self.statuses.append(name)

    def wait_for(self, count: int) -> list[str]:
        wait_until(lambda: len(self.statuses) >= count, CHANGE_TIMEOUT, f"{count} messages")
        return self.statuses

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(5)
        self._channel.close()


def database_up(metrics_port: int, expected: float) -> bool:
    """Waits until orgservice_database_up shows `expected` (set as health changes)."""
    samples = scrape_when(
        metrics_port,
        lambda s: value(s, "orgservice_database_up") == expected,
        f"orgservice_database_up {expected}",
    )
    return value(samples, "orgservice_database_up") == expected


def test_health_follows_database_reachability(
    start_service: StartService, database: FreshDatabase
) -> None:
    metrics_port = free_port()
    service = start_service(
        *("--database-url", database.url, "--health-interval", "0.2"),
        *("--metrics-port", str(metrics_port)),
    )
    probe = HealthProbe(service.port)
    liveness, readiness = HealthWatch(service.port, LIVENESS), HealthWatch(service.port, SERVICE)
    try:
        assert probe.all_are("SERVING")
        # Watch sends the current status at once, and nothing more while it holds.
        wait_until(
            lambda: bool(liveness.statuses and readiness.statuses),
            FIRST_MESSAGE_TIMEOUT,
            "the first message of each Watch",
        )
        time.sleep(STEADY_SECONDS)
        assert liveness.statuses == readiness.statuses == ["SERVING"]
        assert database_up(metrics_port, 1)

        database.drop()
        wait_until(lambda: probe.status(SERVICE) == "NOT_SERVING", CHANGE_TIMEOUT, "NOT_SERVING")
        assert probe.status(LIVENESS) == "SERVING"
        assert readiness.wait_for(2)[1] == "NOT_SERVING"
        assert database_up(metrics_port, 0)
        time.sleep(STEADY_SECONDS)
        assert readiness.statuses == ["SERVING", "NOT_SERVING"]

        database.create()
        wait_until(lambda: probe.all_are("SERVING"), CHANGE_TIMEOUT, "SERVING again")
        assert readiness.wait_for(3) == ["SERVING", "NOT_SERVING", "SERVING"]
        assert database_up(metrics_port, 1)
        # Liveness never changed, so its stream never spoke again.
        assert liveness.statuses == ["SERVING"]
    finally:
        for each in (probe, liveness, readiness):
            each.close()


def test_health_command_exits_0_only_when_serving(
    start_service: StartService, database: FreshDatabase
) -> None:
    service = start_service("--database-url", database.url, "--health-interval", "0.2")
    # Each run is a process of its own: they run side by side.
    with ThreadPoolExecutor() as pool:
        ready = pool.submit(health_command, service, service.port, "--service", SERVICE)
        alive = pool.submit(health_command, service, service.port)
        nobody = pool.submit(health_command, service, free_port(), "--timeout", "1")
        assert ready.result() == (0, ["SERVING"])
        assert alive.result() == (0, ["SERVING"])
        code, lines = nobody.result()
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith("UNAVAILABLE"), lines

    database.drop()
    probe = HealthProbe(service.port)
    try:
        wait_until(lambda: probe.status(SERVICE) == "NOT_SERVING", CHANGE_TIMEOUT, "NOT_SERVING")
    finally:
        probe.close()
    with ThreadPoolExecutor() as pool:
        ready = pool.submit(health_command, service, service.port, "--service", SERVICE)
        alive = pool.submit(health_command, service, service.port)
        assert ready.result() == (1, ["NOT_SERVING"])
        assert alive.result() == (0, ["SERVING"])
