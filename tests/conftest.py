"""Shared fixtures: real databases (SQLite file, fresh PostgreSQL database), a real
server on a free port, and clients that call it through generated stubs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any
from typing import TypeVar

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc
from sqlalchemy import Engine

from orgservice import devkeys
from orgservice.config import Settings
from orgservice.server import OrgServer
from orgservice.storage.database import EngineOptions
from orgservice.storage.database import create_database_engine
from orgservice.storage.startup import prepare_database
from tests.support.dns_server import LocalDnsServer
from tests.support.pgbouncer import direct_url_for
from tests.support.pgbouncer import pooled_url

# Own PostgreSQL clusters and PgBouncer (tests/support); ORGSERVICE_TEST_PGBOUNCER=1 hands
# servers the test databases through PgBouncer (`pooled_url`; admin statements stay direct).
# Each suite's time, against its budget, ends every run (suite_times).
pytest_plugins = ["tests.support.fixtures", "tests.support.migrations", "tests.support.suite_times"]

BACKENDS = [
    name.strip()
    for name in os.environ.get("ORGSERVICE_TEST_DATABASES", "sqlite,postgresql").split(",")
    if name.strip()
]
POSTGRES_ADMIN_URL = os.environ.get(
    "ORGSERVICE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _postgres_unavailable(reason: str) -> None:
    # In CI a missing PostgreSQL is a failure: its tests must never be skipped silently.
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL unavailable: {reason}")


def require_postgres_tests() -> None:
    """Skips the test unless PostgreSQL is among the selected backends."""
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL tests not selected (ORGSERVICE_TEST_DATABASES)")


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A new, empty database for this test session, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'orgservice.db'}"
        return
    with new_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for tests that need real row locks and concurrency."""
    require_postgres_tests()
    with new_postgres_database() as url:
        yield url


class new_postgres_database:  # a context manager used like a function
    def __enter__(self) -> str:
        self.name = f"orgservice_test_{uuid.uuid4().hex[:12]}"
        try:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
        except psycopg.OperationalError as error:
            _postgres_unavailable(str(error).splitlines()[0])
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+psycopg://"
        )
        return pooled_url(f"{base}/{self.name}")

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def dev_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "dev-key"
    devkeys.load_or_create(path)
    return path


def settings_for(database_url: str, dev_key_file: Path, **overrides: Any) -> Settings:
    direct_url = direct_url_for(database_url)
    if direct_url != database_url:  # through PgBouncer (ORGSERVICE_TEST_PGBOUNCER=1)
        overrides = {"database_pooler": "pgbouncer", "database_listen_url": direct_url, **overrides}
    base = Settings(
        host="127.0.0.1",
        port=0,
        database_url=database_url,
        dev=True,
        dev_key_file=dev_key_file,
        threads=8,
        health_interval=0.2,
        shutdown_grace=2.0,
    )
    return replace(base, **overrides)


T = TypeVar("T")


@dataclass
class Api:
    """A running server and a way to make clients for it."""

    server: OrgServer
    channel: grpc.Channel
    mint: Callable[..., str]
    engine: Engine  # the test's own connections to the server's database

    @property
    def port(self) -> int:
        return self.server.port

    def on_server(self, work: Callable[[], T]) -> T:
        """Runs `work` where the server runs its use cases (with `server.database`)."""
        return self.server.run_database_work(work)

    def client(self, subject: str | None = None, **claims: Any) -> Client:
        """A client for a new (or the named) user; claims go into its token."""
        subject = subject or f"user-{uuid.uuid4().hex[:10]}"
        return Client(self.channel, self.mint(subject=subject, **claims), subject)

    def platform(self) -> Client:
        return self.client(scope="orgs:admin")

    def anonymous(self) -> rpc_grpc.OrganizationServiceStub:
        return rpc_grpc.OrganizationServiceStub(self.channel)


class Client:
    """The generated stub with this user's bearer token on every call."""

    def __init__(self, channel: grpc.Channel, token: str, subject: str) -> None:
        self.token = token
        self.subject = subject
        self._stub = rpc_grpc.OrganizationServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {token}"),)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        call = getattr(self._stub, method)
        return lambda request, **kwargs: call(
            request, **{"metadata": self._metadata, "timeout": 30, **kwargs}
        )

    @property
    def user_id(self) -> str:
        return str(self.GetCurrentUser(rpc.GetCurrentUserRequest()).user.id)

    def create_org(self, name: str | None = None, **fields: Any) -> Any:
        request = rpc.CreateOrganizationRequest(
            name=name or f"Org {uuid.uuid4().hex[:8]}", **fields
        )
        return self.CreateOrganization(request).organization


def start_api(settings: Settings) -> Iterator[Api]:
    prepare_database(settings.database_url)
    server = OrgServer(settings)
    server.run_in_background()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    key = devkeys.load_or_create(settings.dev_key_file)

    def mint(**claims: Any) -> str:
        return devkeys.mint_token(key, **claims)

    engine = create_database_engine(
        settings.database_url, EngineOptions(pool_size=2, pooler=settings.database_pooler)
    )
    try:
        yield Api(server, channel, mint, engine)
    finally:
        channel.close()
        engine.dispose()
        server.stop_background(grace=1)


@pytest.fixture(scope="session")
def api(database_url: str, dev_key_file: Path, dns_server: LocalDnsServer) -> Iterator[Api]:
    """One server per database backend, shared by the session (tests use fresh users)."""
    yield from start_api(settings_for(database_url, dev_key_file, dns_resolver=dns_server.address))


@pytest.fixture(scope="session")
def pg_api(postgres_url: str, dev_key_file: Path, dns_server: LocalDnsServer) -> Iterator[Api]:
    """A server on PostgreSQL, for concurrency tests."""
    yield from start_api(
        settings_for(postgres_url, dev_key_file, threads=32, dns_resolver=dns_server.address)
    )


@pytest.fixture(scope="session")
def pg_api_peer(
    pg_api: Api, postgres_url: str, dev_key_file: Path, dns_server: LocalDnsServer
) -> Iterator[Api]:
    """A second server (a replica) on pg_api's database. Within one server, mutations of
    an organization wait for each other before they reach the database; calls spread
    over two servers race in the database itself."""
    yield from start_api(
        settings_for(postgres_url, dev_key_file, threads=32, dns_resolver=dns_server.address)
    )


@dataclass(frozen=True)
class RpcFailure:
    code: grpc.StatusCode
    message: str
    reason: str
    violations: list[str]


def failure(call: Callable[[], Any]) -> RpcFailure:
    """Runs a call that must fail and returns its status with decoded error details."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    error = raised.value
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    reason, violations = "", []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "orgs.v1"
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [v.field for v in bad.field_violations]
    return RpcFailure(error.code(), error.details(), reason, violations)  # type: ignore[attr-defined]
