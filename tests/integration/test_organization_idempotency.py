"""CreateOrganization with a request_id (`api`, both backends): a retry returns the
first result and creates nothing; the id must be a UUID and is bound to its request and
to its caller."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc

from tests.conftest import Api
from tests.conftest import failure
from tests.support.clients import tag
from tests.support.organizations import list_orgs
from tests.support.organizations import memberships

Code = grpc.StatusCode


def create_request(name: str, request_id: str, **fields: Any) -> rpc.CreateOrganizationRequest:
    return rpc.CreateOrganizationRequest(name=name, request_id=request_id, **fields)


def test_same_request_id_returns_the_first_result_and_creates_once(api: Api) -> None:
    alice = api.client()
    name = f"Idempotent {tag()}"
    request = create_request(name, str(uuid.uuid4()), description="once")

    first = alice.CreateOrganization(request).organization
    second = alice.CreateOrganization(request).organization

    assert second.id == first.id
    assert second.slug == first.slug
    assert list_orgs(alice, filter=name).total_size == 1
    assert list_orgs(alice).total_size == 2  # the personal organization and this one


def test_request_id_must_be_a_uuid(api: Api) -> None:
    request = create_request(f"Org {tag()}", "not-a-uuid")
    error = failure(lambda: api.client().CreateOrganization(request))
    assert error.code == Code.INVALID_ARGUMENT
    assert error.violations == ["request_id"]


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"name": "Another name"}, id="name"),
        pytest.param({"description": "different"}, id="description"),
        pytest.param({"labels": {"env": "prod"}}, id="labels"),
        pytest.param({"slug": "some-other-slug"}, id="slug"),
    ],
)
def test_request_id_reused_for_a_different_request(api: Api, changed: dict[str, Any]) -> None:
    alice = api.client()
    request_id = str(uuid.uuid4())
    original = {"name": f"Original {tag()}", "description": "first"}
    alice.CreateOrganization(create_request(request_id=request_id, **original))

    error = failure(
        lambda: alice.CreateOrganization(
            create_request(request_id=request_id, **{**original, **changed})
        )
    )

    assert error.code == Code.INVALID_ARGUMENT
    assert error.reason == "REQUEST_ID_REUSED"
    assert list_orgs(alice).total_size == 2


def test_same_request_id_from_another_user_creates_another_organization(api: Api) -> None:
    request = create_request(f"Shared rid {tag()}", str(uuid.uuid4()))
    alice, bob = api.client(), api.client()

    from_alice = alice.CreateOrganization(request).organization
    from_bob = bob.CreateOrganization(request).organization

    assert from_alice.id != from_bob.id
    assert from_alice.slug != from_bob.slug
    assert memberships(bob)[from_bob.id][1] == "owner"
    assert from_alice.id not in memberships(bob)


def test_without_request_id_every_create_is_new(api: Api) -> None:
    alice = api.client()
    name = f"No rid {tag()}"
    first, second = alice.create_org(name), alice.create_org(name)
    assert first.id != second.id
    assert list_orgs(alice, filter=name).total_size == 2
