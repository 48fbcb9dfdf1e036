"""Concurrent organization RPCs on PostgreSQL (real row locks, real races): `pg_api`.

Every scenario fires real gRPC calls from a thread pool, released together by a barrier
so that they reach the server at the same time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client
from tests.support.clients import provisioned
from tests.support.clients import tag
from tests.support.organizations import SLUG_RE
from tests.support.races import responses_or_errors
from tests.support.races import split
from tests.support.races import the_one_winner

pytestmark = pytest.mark.postgres_only


def create(client: Client, **fields: Any) -> Callable[[], pb.Organization]:
    return lambda: client.CreateOrganization(rpc.CreateOrganizationRequest(**fields)).organization


@pytest.mark.parametrize("round_", range(20))
def test_concurrent_creates_with_the_same_slug_have_one_winner(pg_api: Api, round_: int) -> None:
    slug = f"race-{round_}-{tag()}"
    alice, bob = provisioned(pg_api, 2)

    results = responses_or_errors(
        [create(alice, name="Alice", slug=slug), create(bob, name="Bob", slug=slug)]
    )

    won = the_one_winner(results, grpc.StatusCode.ALREADY_EXISTS, "SLUG_TAKEN")
    assert won.slug == slug
    platform = pg_api.platform()
    found = platform.GetOrganization(rpc.GetOrganizationRequest(slug=slug)).organization
    assert found.id == won.id
    assert found.member_count == 1
    assert found.workspace_count == 1


def test_concurrent_first_calls_provision_exactly_once(pg_api: Api) -> None:
    subject = f"racer-{tag()}"
    clients = [pg_api.client(subject, name="Racer") for _ in range(10)]

    results = responses_or_errors(
        [lambda c=c: c.GetCurrentUser(rpc.GetCurrentUserRequest()) for c in clients]
    )

    _, errors = split(results)
    assert not errors, errors
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

    results = responses_or_errors(
        [create(alice, name=name, request_id=request_id) for _ in range(10)]
    )

    _, errors = split(results)
    assert not errors, errors
    assert len({organization.id for organization in results}) == 1
    listed = alice.ListOrganizations(rpc.ListOrganizationsRequest(filter=name))
    assert listed.total_size == 1
    assert listed.organizations[0].id == results[0].id


def test_concurrent_creates_with_the_same_name_get_distinct_slugs(pg_api: Api) -> None:
    alice = pg_api.client()
    alice.GetCurrentUser(rpc.GetCurrentUserRequest())
    name = f"Crowded {tag()}"

    results = responses_or_errors([create(alice, name=name) for _ in range(10)])

    _, errors = split(results)
    assert not errors, errors
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

    results = responses_or_errors([rename(i) for i in range(10)])

    won = the_one_winner(results, grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    current = alice.GetOrganization(rpc.GetOrganizationRequest(organization_id=original.id))
    assert current.organization == won


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

    results = responses_or_errors([move(o) for o in organizations])

    won = the_one_winner(results, grpc.StatusCode.ALREADY_EXISTS, "SLUG_TAKEN")
    found = alice.GetOrganization(rpc.GetOrganizationRequest(slug=slug)).organization
    assert found.id == won.id
