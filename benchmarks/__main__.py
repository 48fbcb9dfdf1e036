"""Latency of the hot RPCs against a real server, on SQLite and PostgreSQL.

Calls are interleaved round-robin so every RPC sees the same machine noise, and each
is reported as a ratio to grpc.health.v1.Health/Check (transport cost alone): the
ratios are what to compare between runs, not the milliseconds.

    make bench                      # both backends (PostgreSQL if reachable)
    python -m benchmarks --rounds 500
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc

from orgservice import devkeys
from orgservice.config import Settings
from orgservice.server import create_server

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def postgres_database() -> Iterator[str | None]:
    name = f"orgservice_bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        yield None
        return
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
    return samples


def bench_backend(label: str, database_url: str, key_file: Path, rounds: int) -> None:
    settings = replace(
        Settings(), port=0, database_url=database_url, dev=True, dev_key_file=key_file
    )
    server = create_server(settings)
    server.start()
    key = devkeys.load_or_create(key_file)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = rpc_grpc.OrganizationServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            auth = (("authorization", f"Bearer {devkeys.mint_token(key, subject='bench')}"),)
            org = stub.CreateOrganization(
                rpc.CreateOrganizationRequest(name="Bench"), metadata=auth
            ).organization
            calls: dict[str, Callable[[], Any]] = {
                "Health/Check (baseline)": lambda: health.Check(health_pb2.HealthCheckRequest()),
                "CheckPermission": lambda: stub.CheckPermission(
                    rpc.CheckPermissionRequest(
                        organization_id=org.id, permission="workspaces.create"
                    ),
                    metadata=auth,
                ),
                "GetOrganization": lambda: stub.GetOrganization(
                    rpc.GetOrganizationRequest(organization_id=org.id), metadata=auth
                ),
                "ListMembers": lambda: stub.ListMembers(
                    rpc.ListMembersRequest(organization_id=org.id), metadata=auth
                ),
                "ListOrganizations": lambda: stub.ListOrganizations(
                    rpc.ListOrganizationsRequest(), metadata=auth
                ),
            }
            measure(calls, rounds // 10)  # warm-up: caches, pools, JIT-free but lazy paths
            samples = measure(calls, rounds)
    finally:
        server.stop(grace=1)
    baseline = statistics.median(samples["Health/Check (baseline)"])
    print(f"\n{label}: {rounds} interleaved rounds")
    print(f"  {'rpc':<26}{'median ms':>10}{'p95 ms':>9}{'x baseline':>12}")
    for name, values in samples.items():
        median = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"  {name:<26}{median * 1000:>10.3f}{p95 * 1000:>9.3f}{median / baseline:>12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "dev-key"
        bench_backend("SQLite", f"sqlite:///{tmp}/bench.db", key_file, args.rounds)
        with postgres_database() as url:
            if url is None:
                print("\nPostgreSQL: not reachable, skipped")
            else:
                bench_backend("PostgreSQL", url, key_file, args.rounds)


if __name__ == "__main__":
    main()
