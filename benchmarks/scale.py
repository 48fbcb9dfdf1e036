"""Scale: do the hot reads cost the same with 1,000,000 organizations and one
organization of 100,000 members as with 100 rows? (`make bench-scale`, PostgreSQL only,
not in CI: loading takes minutes.)

The data is written with COPY straight into a migrated database: 1,000,000 organizations,
each with its slug, built-in roles and owner; one of them with 100,000 members and one with
100. The service then runs with the read cache off (every call reads the database) and a
client measures median latencies, interleaving the large and the small case:
GetOrganization, CheckPermission, ListMembers' first page, and a page at depth 90,000.

    python -m benchmarks.scale [--organizations 1000000] [--members 100000] [--calls 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc

from benchmarks.dataset import EPOCH
from benchmarks.dataset import copy_organizations
from benchmarks.dataset import copy_rows
from benchmarks.dataset import copy_users
from benchmarks.processes import Service
from benchmarks.processes import fresh_postgres_database
from orgservice import devkeys
from orgservice.api.page_tokens import PageTokens
from orgservice.api.page_tokens import request_binding
from orgservice.domain.models import Cursor
from orgservice.storage.startup import prepare_database
from tests.support.pgbouncer import direct_conninfo

SECRET = "bench-scale-page-token-secret"  # noqa: S105 (a throwaway for this benchmark)
DEPTH = 90_000


@dataclass(frozen=True)
class Organization:
    id: str
    owner_subject: str
    member_ids: list[str]  # ordered as ListMembers pages them


def load(url: str, organizations: int, members: int) -> tuple[Organization, Organization]:
    """Writes the data set with COPY; returns the large and the small organization."""
    large = Organization(str(uuid.uuid4()), "owner-large", [])
    small = Organization(str(uuid.uuid4()), "owner-small", [])
    sizes = {large.id: members, small.id: 100}
    started = time.monotonic()
    with psycopg.connect(direct_conninfo(url)) as connection:
        org_ids = [large.id, small.id, *(str(uuid.uuid4()) for _ in range(organizations - 2))]
        owner_subjects = [large.owner_subject, small.owner_subject]
        owner_subjects += [f"owner-{index}" for index in range(2, len(org_ids))]
        owner_ids = copy_organizations(connection, org_ids, owner_subjects, sizes)
        # The large and the small organization come first: their owners are owner_ids[0, 1].
        for index, (organization, size) in enumerate(((large, members), (small, 100))):
            member_ids = [str(uuid.uuid4()) for _ in range(size - 1)]
            copy_users(connection, ((member, f"member-{member}") for member in member_ids))
            copy_rows(
                connection,
                "memberships",
                ("organization_id", "user_id", "role", "create_time", "update_time"),
                (
                    (organization.id, member, "viewer", EPOCH + timedelta(seconds=index + 1), EPOCH)
                    for index, member in enumerate(member_ids)
                ),
            )
            organization.member_ids.extend([owner_ids[index], *member_ids])
        connection.execute("ANALYZE")
    print(f"loaded {organizations:,} organizations in {time.monotonic() - started:.0f}s")
    return large, small


def measure(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median milliseconds per call, interleaved so every case sees the same noise."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--organizations", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres_database() as url:
        prepare_database(url)
        large, small = load(url, args.organizations, args.members)
        environment = {
            "ORGSERVICE_AUTHZ_CACHE_SECONDS": "0",
            "ORGSERVICE_PAGE_TOKEN_SECRET": SECRET,
        }
        with Service.started(url, 1, Path(tmp), environment=environment) as service:
            report(service, large, small, args.calls)


def report(service: Service, large: Organization, small: Organization, calls: int) -> None:
    key = devkeys.load_or_create(service.key_file)
    tokens = PageTokens(SECRET.encode())
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stub = rpc_grpc.OrganizationServiceStub(channel)

        def bearer(organization: Organization) -> tuple[tuple[str, str], ...]:
            token = devkeys.mint_token(key, subject=organization.owner_subject, ttl_seconds=3600)
            return (("authorization", f"Bearer {token}"),)

        # Signed once, outside the timed calls, as a client reuses its token.
        owner_metadata = {o.id: bearer(o) for o in (large, small)}

        def as_owner(organization: Organization) -> tuple[tuple[str, str], ...]:
            return owner_metadata[organization.id]

        def page_at(organization: Organization, depth: int) -> rpc.ListMembersRequest:
            request = rpc.ListMembersRequest(organization_id=organization.id, page_size=50)
            owner_id = organization.member_ids[0]
            position = Cursor(EPOCH + timedelta(seconds=depth), organization.member_ids[depth])
            request.page_token = tokens.encode(position, request_binding(request, owner_id))
            return request

        cases: dict[str, Callable[[Organization], Callable[[], Any]]] = {
            "GetOrganization": lambda o: (
                lambda: stub.GetOrganization(
                    rpc.GetOrganizationRequest(organization_id=o.id), metadata=as_owner(o)
                )
            ),
            "CheckPermission": lambda o: (
                lambda: stub.CheckPermission(
                    rpc.CheckPermissionRequest(organization_id=o.id, permission="members.list"),
                    metadata=as_owner(o),
                )
            ),
            "ListMembers, first page": lambda o: (
                lambda: stub.ListMembers(
                    rpc.ListMembersRequest(organization_id=o.id, page_size=50), metadata=as_owner(o)
                )
            ),
        }
        depth = min(DEPTH, len(large.member_ids) - 60)
        deep = page_at(large, depth)
        calls_by_name: dict[str, Callable[[], Any]] = {}
        for name, make in cases.items():
            calls_by_name[f"{name} (large)"] = make(large)
            calls_by_name[f"{name} (small)"] = make(small)
        calls_by_name["deep page"] = lambda: stub.ListMembers(deep, metadata=as_owner(large))
        for call in calls_by_name.values():
            call()  # warm-up: identities provisioned, statements prepared
        medians = measure(calls_by_name, calls)
    print(
        f"\nmedian ms over {calls} interleaved calls (read cache off: each call reads the database)"
    )
    members = f"{len(large.member_ids):,} members"
    print(f"  {'RPC':<26}{'100 members':>13}{members:>17}{'ratio':>8}")
    for name in cases:
        small_ms, large_ms = medians[f"{name} (small)"], medians[f"{name} (large)"]
        print(f"  {name:<26}{small_ms:>13.2f}{large_ms:>17.2f}{large_ms / small_ms:>8.2f}")
    deep_ms, first_ms = medians["deep page"], medians["ListMembers, first page (large)"]
    label = f"page at depth {depth:,}"
    first_label = f"first: {first_ms:.2f}"
    print(f"  {label:<26}{first_label:>13}{deep_ms:>17.2f}{deep_ms / first_ms:>8.2f}")


if __name__ == "__main__":
    main()
