"""The processes a benchmark runs against: the service and the ceiling, each on free
ports, stopped whatever happens; and the data the benchmark reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.h2load import CLIENTS
from benchmarks.h2load import STREAMS_PER_CLIENT
from benchmarks.h2load import Buckets
from orgservice import devkeys
from orgservice.config import Settings
from tests.support.processes import free_port
from tests.support.processes import poll

POSTGRES_ADMIN_URL = os.environ.get(
    "ORGSERVICE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# As the service reads it (`ORGSERVICE_THREADS`), passed on so the pool's size is known.
THREADS = int(os.environ.get("ORGSERVICE_THREADS", Settings.threads))
START_TIMEOUT = 60.0


@contextmanager
def _process(
    command: list[str], log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(15)


@dataclass
class Service:
    port: int
    metrics_port: int
    key_file: Path
    workers: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    @classmethod
    @contextmanager
    def started(
        cls, database_url: str, workers: int, work: Path, environment: dict[str, str] | None = None
    ) -> Iterator[Service]:
        service = cls(free_port(), free_port(), work / "dev-key", workers)
        env = {
            **os.environ,
            **(environment or {}),
            "ORGSERVICE_DEV_KEY_FILE": str(service.key_file),
        }
        command = [
            sys.executable,
            "-m",
            "orgservice",
            "serve",
            "--dev",
            "--port",
            str(service.port),
            "--workers",
            str(workers),
            "--threads",
            str(THREADS),
            "--metrics-port",
            str(service.metrics_port),
            "--database-url",
            database_url,
        ]
        with _process(command, work / "service.log", env):
            poll(service._all_workers_ready, START_TIMEOUT, "the service's workers")
            yield service

    def _all_workers_ready(self) -> bool:
        try:
            samples = self._samples()
        except OSError:
            return False
        pool = samples.get(("orgservice_db_pool_size", ()), 0.0)
        return pool >= THREADS * self.workers and self._serving()

    def _serving(self) -> bool:
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="orgs.v1.OrganizationService"), timeout=2
                )
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def _samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as response:
            text = response.read().decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def handled(self, method: str) -> dict[str, float]:
        """Completed calls of `method` by status code, summed over the workers."""
        return self._summed("grpc_server_handled_total", method, "grpc_code")

    def handling_buckets(self, method: str) -> Buckets:
        """The server's own latency histogram of `method`, summed over the workers:
        upper bound in seconds -> calls completed within it (cumulative)."""
        summed = self._summed("grpc_server_handling_seconds_bucket", method, "le")
        return {float(bound): count for bound, count in summed.items()}

    def _summed(self, sample: str, method: str, by: str) -> dict[str, float]:
        counts: dict[str, float] = {}
        for (name, labels), value in self._samples().items():
            found = dict(labels)
            if name == sample and found.get("grpc_method") == method:
                counts[found[by]] = counts.get(found[by], 0.0) + value
        return counts

    def check_all_succeeded(self, method: str, before: dict[str, float], requests: int) -> None:
        after = self.handled(method)
        delta = {code: after.get(code, 0.0) - before.get(code, 0.0) for code in after}
        # h2load resets the streams still open when its time is up: those end CANCELLED.
        failed = {
            code: count
            for code, count in delta.items()
            if code not in {"OK", "CANCELLED"} and count
        }
        if (
            failed
            or delta.get("CANCELLED", 0.0) > CLIENTS * STREAMS_PER_CLIENT
            or delta.get("OK", 0.0) < requests
        ):
            raise RuntimeError(
                f"{method}: {requests} requests sent, the server answered {delta}: "
                "a fast error is not a result"
            )


@dataclass
class Ceiling:
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    @classmethod
    @contextmanager
    def started(cls, workers: int, work: Path) -> Iterator[Ceiling]:
        ceiling = cls(free_port())
        command = [
            sys.executable,
            "-m",
            "benchmarks.ceiling",
            "--port",
            str(ceiling.port),
            "--workers",
            str(workers),
        ]
        with _process(command, work / "ceiling.log", dict(os.environ)):
            poll(ceiling._answers, START_TIMEOUT, "the ceiling server")
            yield ceiling

    def _answers(self) -> bool:
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
            except grpc.FutureTimeoutError:
                return False
        return True


@dataclass
class Fixture:
    token: str
    requests: dict[str, Message]


def populate(service: Service, *, members: int) -> Fixture:
    """An organization with `members` members (its owner included) and the requests the
    benchmark sends, as its owner."""
    key = devkeys.load_or_create(service.key_file)
    token = devkeys.mint_token(key, subject="bench-owner", ttl_seconds=24 * 3600)
    owner = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stub = rpc_grpc.OrganizationServiceStub(channel)
        organization = stub.CreateOrganization(
            rpc.CreateOrganizationRequest(name="Bench"), metadata=owner, timeout=30
        ).organization
        for index in range(members - 1):
            member = devkeys.mint_token(key, subject=f"bench-member-{index}")
            user = stub.GetCurrentUser(
                rpc.GetCurrentUserRequest(), metadata=(("authorization", f"Bearer {member}"),)
            ).user
            stub.AddMember(
                rpc.AddMemberRequest(
                    organization_id=organization.id, user_id=user.id, role="viewer"
                ),
                metadata=owner,
                timeout=30,
            )
    return Fixture(
        token,
        {
            "GetOrganization": rpc.GetOrganizationRequest(organization_id=organization.id),
            "CheckPermission": rpc.CheckPermissionRequest(
                organization_id=organization.id, permission="members.list"
            ),
            "ListMembers": rpc.ListMembersRequest(
                organization_id=organization.id, page_size=members
            ),
            "CreateOrganization": rpc.CreateOrganizationRequest(name="Bench created"),
        },
    )


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    name = f"orgservice_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+psycopg://"
        )
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
