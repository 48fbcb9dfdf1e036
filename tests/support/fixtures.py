"""Fixtures for infrastructure the tests own (registered by tests/conftest.py):
`own_postgres`, a PostgreSQL cluster per test module, `pgbouncer`, the session's
PgBouncer in front of the shared PostgreSQL server, and `dns_server`, the session's DNS
server (the servers' --dns-resolver)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_ADMIN_URL
from tests.conftest import _postgres_unavailable
from tests.conftest import require_postgres_tests
from tests.support.dns_server import LocalDnsServer
from tests.support.pgbouncer import PgBouncer
from tests.support.pgbouncer import close_shared_pgbouncers
from tests.support.pgbouncer import shared_pgbouncer
from tests.support.pgcluster import PgCluster
from tests.support.processes import ToolUnavailableError


def new_cluster() -> PgCluster:
    """A new (not yet started) cluster for a test that needs its own; skips (or, in CI,
    fails) when PostgreSQL tests are off or its server binaries are missing."""
    require_postgres_tests()
    try:
        return PgCluster.initdb()
    except ToolUnavailableError as error:
        _postgres_unavailable(str(error))
        raise  # not reached: the line above skips or fails


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PgCluster]:
    """A started PostgreSQL cluster of this module's own, to stop, kill or freeze.
    Tests leave it running (or restart it) for the next test of the module."""
    with new_cluster() as cluster:
        yield cluster.start()


@pytest.fixture(scope="session")
def pgbouncer() -> PgBouncer:
    """PgBouncer (transaction pooling) in front of the shared PostgreSQL server; the same
    one ORGSERVICE_TEST_PGBOUNCER=1 routes the test databases through."""
    require_postgres_tests()
    server = make_url(POSTGRES_ADMIN_URL)
    try:
        return shared_pgbouncer(server.host or "127.0.0.1", server.port or 5432)
    except ToolUnavailableError as error:
        _postgres_unavailable(str(error))
        raise  # not reached: the line above skips or fails


@pytest.fixture(scope="session")
def dns_server() -> Iterator[LocalDnsServer]:
    server = LocalDnsServer().start()
    try:
        yield server
    finally:
        server.stop()


def pytest_sessionfinish() -> None:
    close_shared_pgbouncers()
