"""Concurrent invitation and workspace RPCs on PostgreSQL (real row locks, real races):
`pg_api`, a server with 32 threads.

Every scenario fires real gRPC calls from a thread pool, released together by a barrier
so that they reach the server at the same time. Users are provisioned before the race,
so only the race itself is concurrent.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client
from tests.support.clients import provisioned
from tests.support.clients import tag
from tests.support.races import responses_or_errors
from tests.support.races import the_one_winner

pytestmark = pytest.mark.postgres_only


def organization(client: Client, organization_id: str) -> Any:
    request = rpc.GetOrganizationRequest(organization_id=organization_id)
    return client.GetOrganization(request).organization


def recorded(client: Client, organization_id: str, action: str) -> int:
    """How many events of `action` the organization's audit log holds."""
    request = rpc.ListAuditEventsRequest(organization_id=organization_id, action=action)
    return len(client.ListAuditEvents(request).events)


def test_fifty_concurrent_accepts_of_one_token_have_one_winner(pg_api: Api) -> None:
    owner = pg_api.client()
    org = owner.create_org()
    created = owner.CreateInvitation(
        rpc.CreateInvitationRequest(
            organization_id=org.id, email=f"{tag()}@example.com", role="viewer"
        )
    )
    users = provisioned(pg_api, 50)
    before = organization(owner, org.id).member_count

    results = responses_or_errors(
        [
            lambda user=user: (
                user.AcceptInvitation(rpc.AcceptInvitationRequest(token=created.token)).member
            )
            for user in users
        ]
    )

    winner = the_one_winner(results, grpc.StatusCode.FAILED_PRECONDITION, "INVITATION_NOT_PENDING")
    assert organization(owner, org.id).member_count == before + 1
    assert winner.role == "viewer"
    members = owner.ListMembers(rpc.ListMembersRequest(organization_id=org.id)).members
    joined = {m.user.id for m in members} & {user.user_id for user in users}
    assert joined == {winner.user.id}
    state = owner.GetInvitation(rpc.GetInvitationRequest(invitation_id=created.invitation.id))
    assert state.invitation.state == pb.INVITATION_STATE_ACCEPTED
    assert recorded(owner, org.id, "invitation.accepted") == 1


def test_twenty_concurrent_invitations_for_one_email_have_one_winner(pg_api: Api) -> None:
    owner = pg_api.client()
    org = owner.create_org()
    email = f"{tag()}@example.com"
    request = rpc.CreateInvitationRequest(organization_id=org.id, email=email, role="developer")

    results = responses_or_errors([lambda: owner.CreateInvitation(request) for _ in range(20)])

    winner = the_one_winner(results, grpc.StatusCode.ALREADY_EXISTS, "INVITATION_PENDING")
    listed = owner.ListInvitations(rpc.ListInvitationsRequest(organization_id=org.id))
    assert [i.id for i in listed.invitations] == [winner.invitation.id]
    assert recorded(owner, org.id, "invitation.created") == 1


def test_ten_concurrent_workspaces_with_one_slug_have_one_winner(pg_api: Api) -> None:
    owner = pg_api.client()
    org = owner.create_org()
    slug = f"race-{tag()}"

    results = responses_or_errors(
        [
            lambda n=n: (
                owner.CreateWorkspace(
                    rpc.CreateWorkspaceRequest(organization_id=org.id, name=f"Racer {n}", slug=slug)
                ).workspace
            )
            for n in range(10)
        ]
    )

    the_one_winner(results, grpc.StatusCode.ALREADY_EXISTS, "SLUG_TAKEN")
    listed = owner.ListWorkspaces(rpc.ListWorkspacesRequest(organization_id=org.id))
    assert sorted(w.slug for w in listed.workspaces) == sorted(["default", slug])
    assert organization(owner, org.id).workspace_count == 2
