"""Concurrent organization RPCs on PostgreSQL (real row locks, real races): `pg_api`.

Every scenario fires real gRPC calls from a thread pool, released together by a barrier
so that they reach the server at the same time.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from typing import TypeVar

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
T = TypeVar("T")

pytestmark = pytest.mark.postgres_only


def tag() -> str:
    return uuid.uuid4().hex[:10]


def outcome(call: Callable[[], T]) -> T | grpc.RpcError:
    """The call's result, or the gRPC error it raised."""
    try:
        return call()
    except grpc.RpcError as error:
        return error


def run_together(calls: list[Callable[[], T]]) -> list[T | grpc.RpcError]:
    """Runs every call in its own thread, all released at once; results in call order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | grpc.RpcError:
        barrier.wait(timeout=30)
        return outcome(call)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def successes(results: list[Any]) -> list[Any]:
    return [r for r in results if not isinstance(r, grpc.RpcError)]


def errors(results: list[Any]) -> list[grpc.RpcError]:
    return [r for r in results if isinstance(r, grpc.RpcError)]


def reraise(error: grpc.RpcError) -> None:
    raise error


def create(client: Client, **fields: Any) -> Callable[[], pb.Organization]:
    return lambda: client.CreateOrganization(rpc.CreateOrganizationRequest(**fields)).organization


def provisioned(pg_api: Api) -> list[Client]:
    """Fresh users, provisioned before a race so that only the race itself is concurrent."""
    clients = [pg_api.client(), pg_api.client()]
    for client in clients:
        client.GetCurrentUser(rpc.GetCurrentUserRequest())
    return clients


@pytest.mark.parametrize("round_", range(20))
def test_concurrent_creates_with_the_same_slug_have_one_winner(pg_api: Api, round_: int) -> None:
    slug = f"race-{round_}-{tag()}"
    alice, bob = provisioned(pg_api)

    results = run_together(
        [create(alice, name="Alice", slug=slug), create(bob, name="Bob", slug=slug)]
    )

    won = successes(results)
    lost = errors(results)
    assert len(won) == 1, results
    assert len(lost) == 1, results
    assert won[0].slug == slug
    rejected = failure(lambda: reraise(lost[0]))
    assert (rejected.code, rejected.reason) == (grpc.StatusCode.ALREADY_EXISTS, "SLUG_TAKEN")
    platform = pg_api.platform()
    found = platform.GetOrganization(rpc.GetOrganizationRequest(slug=slug)).organization
    assert found.id == won[0].id
    assert found.member_count == 1
    assert found.workspace_count == 1


def test_concurrent_first_calls_provision_exactly_once(pg_api: Api) -> None:
    subject = f"racer-{tag()}"
    clients = [pg_api.client(subject, name="Racer") for _ in range(10)]

    results = run_together(
        [lambda c=c: c.GetCurrentUser(rpc.GetCurrentUserRequest()) for c in clients]
    )

    assert not errors(results), errors(results)
    assert len({reply.user.id for reply in results}) == 1
    listed = clients[0].ListOrganizations(rpc.ListOrganizationsRequest())
    assert listed.total_size == 1
    assert listed.organizations[0].personal is True
    assert listed.organizations[0].member_count == 1
    final = clients[0].GetCurrentUser(rpc.GetCurrentUserRequest())
    assert [(m.organization_id, m.role) for m in final.memberships] == [
        (listed.organizations[0].id, "owner")
    ]


def test_concurrent_creates_with_the_same_request_id_create_once(pg_api: Api) -> None:
    alice = pg_api.client()
    alice.GetCurrentUser(rpc.GetCurrentUserRequest())
    name = f"Idempotent race {tag()}"
    request_id = str(uuid.uuid4())

    results = run_together([create(alice, name=name, request_id=request_id) for _ in range(10)])

    assert not errors(results), errors(results)
    assert len({organization.id for organization in results}) == 1
    listed = alice.ListOrganizations(rpc.ListOrganizationsRequest(filter=name))
    assert listed.total_size == 1
    assert listed.organizations[0].id == results[0].id


def test_concurrent_creates_with_the_same_name_get_distinct_slugs(pg_api: Api) -> None:
    alice = pg_api.client()
    alice.GetCurrentUser(rpc.GetCurrentUserRequest())
    name = f"Crowded {tag()}"

    results = run_together([create(alice, name=name) for _ in range(10)])

    assert not errors(results), errors(results)
    slugs = [organization.slug for organization in results]
    assert len(set(slugs)) == 10, slugs
    assert all(SLUG_RE.match(slug) for slug in slugs), slugs
    assert len({organization.id for organization in results}) == 10
    listed = alice.ListOrganizations(rpc.ListOrganizationsRequest(filter=name))
    assert listed.total_size == 10


def test_concurrent_updates_with_the_same_etag_have_one_winner(pg_api: Api) -> None:
    alice = pg_api.client()
    original = alice.create_org(f"Etag race {tag()}")

    def rename(i: int) -> Callable[[], pb.Organization]:
        resource = pb.Organization(id=original.id, name=f"Winner {i}", etag=original.etag)
        request = rpc.UpdateOrganizationRequest(
            organization=resource, update_mask=FieldMask(paths=["name"])
        )
        return lambda: alice.UpdateOrganization(request).organization

    results = run_together([rename(i) for i in range(10)])

    won = successes(results)
    assert len(won) == 1, results
    for error in errors(results):
        rejected = failure(lambda error=error: reraise(error))
        assert (rejected.code, rejected.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    current = alice.GetOrganization(rpc.GetOrganizationRequest(organization_id=original.id))
    assert current.organization == won[0]


def test_concurrent_renames_to_the_same_slug_have_one_winner(pg_api: Api) -> None:
    alice = pg_api.client()
    organizations = [alice.create_org(f"Rename race {tag()}") for _ in range(5)]
    slug = f"contested-{tag()}"

    def move(organization: pb.Organization) -> Callable[[], pb.Organization]:
        request = rpc.UpdateOrganizationRequest(
            organization=pb.Organization(id=organization.id, slug=slug),
            update_mask=FieldMask(paths=["slug"]),
        )
        return lambda: alice.UpdateOrganization(request).organization

    results = run_together([move(o) for o in organizations])

    won = successes(results)
    assert len(won) == 1, results
    for error in errors(results):
        rejected = failure(lambda error=error: reraise(error))
        assert (rejected.code, rejected.reason) == (grpc.StatusCode.ALREADY_EXISTS, "SLUG_TAKEN")
    found = alice.GetOrganization(rpc.GetOrganizationRequest(slug=slug)).organization
    assert found.id == won[0].id
