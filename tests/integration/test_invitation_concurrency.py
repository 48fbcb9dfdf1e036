"""Concurrent invitation and workspace RPCs on PostgreSQL (real row locks, real races):
`pg_api`, a server with 32 threads.

Every scenario fires real gRPC calls from a thread pool, released together by a barrier
so that they reach the server at the same time. Users are provisioned before the race,
so only the race itself is concurrent.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from typing import TypeVar

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client

T = TypeVar("T")

pytestmark = pytest.mark.postgres_only


def outcome(call: Callable[[], T]) -> T | grpc.RpcError:
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


def split(results: list[Any]) -> tuple[list[Any], list[grpc.RpcError]]:
    errors = [r for r in results if isinstance(r, grpc.RpcError)]
    return [r for r in results if not isinstance(r, grpc.RpcError)], errors


def code_and_reason(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    reason = ""
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return error.code(), reason  # type: ignore[attr-defined]


def provisioned(pg_api: Api, count: int) -> list[Client]:
    clients = [pg_api.client() for _ in range(count)]
    for client in clients:
        client.GetCurrentUser(rpc.GetCurrentUserRequest())
    return clients


def organization(client: Client, organization_id: str) -> Any:
    request = rpc.GetOrganizationRequest(organization_id=organization_id)
    return client.GetOrganization(request).organization


def test_fifty_concurrent_accepts_of_one_token_have_one_winner(pg_api: Api) -> None:
    owner = pg_api.client()
    org = owner.create_org()
    created = owner.CreateInvitation(
        rpc.CreateInvitationRequest(
            organization_id=org.id, email=f"{uuid.uuid4().hex[:10]}@example.com", role="viewer"
        )
    )
    users = provisioned(pg_api, 50)
    before = organization(owner, org.id).member_count

    results = run_together(
        [
            lambda user=user: (
                user.AcceptInvitation(rpc.AcceptInvitationRequest(token=created.token)).member
            )
            for user in users
        ]
    )

    winners, losers = split(results)
    assert len(winners) == 1
    assert len(losers) == 49
    assert {code_and_reason(e) for e in losers} == {
        (grpc.StatusCode.FAILED_PRECONDITION, "INVITATION_NOT_PENDING")
    }
    assert organization(owner, org.id).member_count == before + 1
    [winner] = winners
    assert winner.role == "viewer"
    members = owner.ListMembers(rpc.ListMembersRequest(organization_id=org.id)).members
    joined = {m.user.id for m in members} & {user.user_id for user in users}
    assert joined == {winner.user.id}
    state = owner.GetInvitation(rpc.GetInvitationRequest(invitation_id=created.invitation.id))
    assert state.invitation.state == pb.INVITATION_STATE_ACCEPTED
    accepted = owner.ListAuditEvents(
        rpc.ListAuditEventsRequest(organization_id=org.id, action="invitation.accepted")
    )
    assert len(accepted.events) == 1


def test_twenty_concurrent_invitations_for_one_email_have_one_winner(pg_api: Api) -> None:
    owner = pg_api.client()
    org = owner.create_org()
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    request = rpc.CreateInvitationRequest(organization_id=org.id, email=email, role="developer")

    results = run_together([lambda: owner.CreateInvitation(request) for _ in range(20)])

    winners, losers = split(results)
    assert len(winners) == 1
    assert len(losers) == 19
    assert {code_and_reason(e) for e in losers} == {
        (grpc.StatusCode.ALREADY_EXISTS, "INVITATION_PENDING")
    }
    listed = owner.ListInvitations(rpc.ListInvitationsRequest(organization_id=org.id))
    assert [i.id for i in listed.invitations] == [winners[0].invitation.id]
    created = owner.ListAuditEvents(
        rpc.ListAuditEventsRequest(organization_id=org.id, action="invitation.created")
    )
    assert len(created.events) == 1


def test_ten_concurrent_workspaces_with_one_slug_have_one_winner(pg_api: Api) -> None:
    owner = pg_api.client()
    org = owner.create_org()
    slug = f"race-{uuid.uuid4().hex[:10]}"

    results = run_together(
        [
            lambda n=n: (
                owner.CreateWorkspace(
                    rpc.CreateWorkspaceRequest(organization_id=org.id, name=f"Racer {n}", slug=slug)
                ).workspace
            )
            for n in range(10)
        ]
    )

    winners, losers = split(results)
    assert len(winners) == 1
    assert len(losers) == 9
    assert {code_and_reason(e) for e in losers} == {(grpc.StatusCode.ALREADY_EXISTS, "SLUG_TAKEN")}
    listed = owner.ListWorkspaces(rpc.ListWorkspacesRequest(organization_id=org.id))
    assert sorted(w.slug for w in listed.workspaces) == sorted(["default", slug])
    assert organization(owner, org.id).workspace_count == 2
