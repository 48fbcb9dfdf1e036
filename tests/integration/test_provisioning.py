"""Provisioning (`api`, both backends): a user's first call creates the user and one
personal organization; later tokens with other claims update the same user record."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import failure
from tests.support.clients import tag
from tests.support.organizations import ACTIVE
from tests.support.organizations import SLUG_RE
from tests.support.organizations import get_org
from tests.support.organizations import list_orgs
from tests.support.organizations import personal_org
from tests.support.organizations import update

Code = grpc.StatusCode


def test_first_call_provisions_the_user_and_one_personal_organization(api: Api) -> None:
    subject = f"new-{tag()}"
    alice = api.client(
        subject, email=f"{subject}@example.com", name="Alice Example", preferred_username=subject
    )

    reply = alice.GetCurrentUser(rpc.GetCurrentUserRequest())

    assert reply.user.subject == subject
    assert reply.user.email == f"{subject}@example.com"
    assert reply.user.username == subject
    assert reply.user.display_name == "Alice Example"
    assert uuid.UUID(reply.user.id)
    assert reply.user.HasField("create_time")
    listed = list_orgs(alice)
    assert listed.total_size == 1
    personal = listed.organizations[0]
    assert personal.personal is True
    assert personal.state == ACTIVE
    assert personal.member_count == 1
    assert personal.workspace_count == 1
    assert SLUG_RE.match(personal.slug)
    assert [(m.organization_id, m.slug, m.role) for m in reply.memberships] == [
        (personal.id, personal.slug, "owner")
    ]


def test_personal_organization_is_created_only_once(api: Api) -> None:
    subject = f"once-{tag()}"
    alice = api.client(subject)
    first = alice.GetCurrentUser(rpc.GetCurrentUserRequest())

    # Same subject, new token and a different set of claims: still the same user.
    again = api.client(subject, email=f"{subject}@example.com")
    second = again.GetCurrentUser(rpc.GetCurrentUserRequest())

    assert second.user.id == first.user.id
    assert list(second.memberships) == list(first.memberships)
    assert list_orgs(again).total_size == 1


def test_claims_update_the_user_record(api: Api) -> None:
    subject = f"renamed-{tag()}"
    before = api.client(subject, name="Old Name").GetCurrentUser(rpc.GetCurrentUserRequest())
    renamed = api.client(subject, name="New Name", email="new@example.com")

    after = renamed.GetCurrentUser(rpc.GetCurrentUserRequest())

    assert before.user.display_name == "Old Name"
    assert after.user.id == before.user.id
    assert after.user.display_name == "New Name"
    assert after.user.email == "new@example.com"
    assert after.user.create_time == before.user.create_time
    assert list_orgs(renamed).total_size == 1


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"name": "N" * 300}, id="long-name"),
        pytest.param({"name": "Bell\x07 Tab\t"}, id="control-chars-in-name"),
        pytest.param({"preferred_username": "U" * 300}, id="long-username"),
        pytest.param({"email": "e" * 300 + "@example.com"}, id="long-email"),
        pytest.param({"name": "日本語"}, id="non-latin-name"),
    ],
)
def test_provisioning_copes_with_unusual_claims(api: Api, claims: dict[str, Any]) -> None:
    alice = api.client(**claims)

    reply = alice.GetCurrentUser(rpc.GetCurrentUserRequest())

    assert [m.role for m in reply.memberships] == ["owner"]
    personal = personal_org(alice)
    assert SLUG_RE.match(personal.slug)
    assert 1 <= len(personal.name) <= 200


def test_personal_organization_cannot_be_made_non_personal(api: Api) -> None:
    alice = api.client()
    personal = personal_org(alice)
    resource = pb.Organization(id=personal.id, personal=False)

    error = failure(lambda: update(alice, resource, ["personal"]))

    assert error.code == Code.INVALID_ARGUMENT
    assert get_org(alice, personal.id).personal is True
