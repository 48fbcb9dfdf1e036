"""AIP-211: only callers allowed to make a request learn what is wrong with it.

Each case is an invalid request about one organization, sent through the RPC method
itself (the API layer hands page tokens, update masks and durations to the use case as
callables it calls after authorizing). A non-member gets NOT_FOUND, a member whose role
lacks the permission PERMISSION_DENIED, and only an allowed caller INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from orgservice.api.errors import code_for
from orgservice.domain.models import Call
from tests.unit.world import Cast
from tests.unit.world import World
from tests.unit.world import failure

BAD_REQUEST_ID = "{0f8fad5b-d9cb-469f-a165-70867728950e}"


@dataclass(frozen=True)
class Scene:
    """An organization, its default workspace and a pending invitation."""

    organization_id: str
    workspace_id: str
    invitation_id: str


@dataclass(frozen=True)
class Case:
    method: str
    permission: str | None  # None: being a member is enough
    request: Callable[[Scene], Message]
    not_found: str = "ORGANIZATION_NOT_FOUND"

    def __str__(self) -> str:
        return self.method


def mask(*paths: str) -> FieldMask:
    return FieldMask(paths=list(paths))


def listing(method: str, permission: str, request: Callable[..., Message]) -> Case:
    """A List request with a page token this service never issued."""
    return Case(
        method,
        permission,
        lambda s: request(organization_id=s.organization_id, page_token="forged.token"),
    )


def invitation(**invalid: Any) -> Case:
    """A CreateInvitation of a good email and role, made invalid by one more field."""
    return Case(
        "CreateInvitation",
        "invitations.create",
        lambda s: rpc.CreateInvitationRequest(
            organization_id=s.organization_id, email="new@example.com", role="viewer", **invalid
        ),
    )


CASES = [
    Case(
        "UpdateOrganization",
        "organizations.update",
        lambda s: rpc.UpdateOrganizationRequest(
            organization=pb.Organization(id=s.organization_id, name="x"),
            update_mask=mask("no_such_field"),
        ),
    ),
    Case(
        "UpdateWorkspace",
        "workspaces.update",
        lambda s: rpc.UpdateWorkspaceRequest(
            workspace=pb.Workspace(organization_id=s.organization_id, id=s.workspace_id),
            update_mask=mask("create_time"),
        ),
    ),
    Case(
        "UpdateRole",
        "roles.update",
        lambda s: rpc.UpdateRoleRequest(
            role=pb.Role(organization_id=s.organization_id, name="bystander"),
            update_mask=mask(*[f"description{n}" for n in range(21)]),
        ),
    ),
    Case(
        "UpdateInvitation",
        "invitations.update",
        lambda s: rpc.UpdateInvitationRequest(
            invitation=pb.Invitation(id=s.invitation_id), update_mask=mask("email")
        ),
        not_found="INVITATION_NOT_FOUND",
    ),
    listing("ListMembers", "members.list", rpc.ListMembersRequest),
    listing("ListWorkspaces", "workspaces.list", rpc.ListWorkspacesRequest),
    listing("ListRoles", "roles.list", rpc.ListRolesRequest),
    listing("ListAuditEvents", "audit.list", rpc.ListAuditEventsRequest),
    listing("ListInvitations", "invitations.list", rpc.ListInvitationsRequest),
    Case(
        "ListInvitations",
        "invitations.list",
        lambda s: rpc.ListInvitationsRequest(
            organization_id=s.organization_id, state=pb.InvitationState.ValueType(99)
        ),
    ),
    Case(
        "CreateWorkspace",
        "workspaces.create",
        lambda s: rpc.CreateWorkspaceRequest(
            organization_id=s.organization_id, name="W", request_id=BAD_REQUEST_ID
        ),
    ),
    Case(
        "CreateRole",
        "roles.create",
        lambda s: rpc.CreateRoleRequest(
            organization_id=s.organization_id, name="new-role", request_id=BAD_REQUEST_ID
        ),
    ),
    invitation(request_id=BAD_REQUEST_ID),
    invitation(ttl=Duration(seconds=-1)),
    Case(
        "ResendInvitation",
        "invitations.create",
        lambda s: rpc.ResendInvitationRequest(
            invitation_id=s.invitation_id, ttl=Duration(seconds=1, nanos=-1)
        ),
        not_found="INVITATION_NOT_FOUND",
    ),
    Case(
        "CheckPermission",
        None,
        lambda s: rpc.CheckPermissionRequest(
            organization_id=s.organization_id, permission="no.such"
        ),
    ),
]


@pytest.fixture
def scene(world: World, cast: Cast) -> Scene:
    world.services.roles.create(
        cast.owner, cast.id, name="bystander", description="", permissions=[]
    )
    invitation, _ = world.services.invitations.create(
        cast.admin, cast.id, email="invitee@example.com", role="viewer", ttl=lambda: None
    )
    workspace_id = next(ws for (org, ws) in world.db.tables.workspaces if org == cast.id)
    return Scene(cast.id, workspace_id, invitation.id)


def call_rpc(world: World, case: Case, scene: Scene, call: Call) -> object:
    return getattr(world.rpcs, case.method)(case.request(scene), call)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_non_member_learns_nothing(world: World, cast: Cast, scene: Scene, case: Case) -> None:
    error = failure(call_rpc, world, case, scene, cast.outsider)
    assert error.reason == case.not_found


@pytest.mark.parametrize("case", [c for c in CASES if c.permission], ids=str)
def test_a_member_without_the_permission_is_refused(
    world: World, cast: Cast, scene: Scene, case: Case
) -> None:
    bystander = world.member(cast.id, "bystander", added_by=cast.owner)
    error = failure(call_rpc, world, case, scene, bystander)
    assert code_for(error) == grpc.StatusCode.PERMISSION_DENIED
    assert error.metadata == {"permission": case.permission}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_an_allowed_caller_learns_what_is_wrong(
    world: World, cast: Cast, scene: Scene, case: Case
) -> None:
    commits = world.db.commits
    error = failure(call_rpc, world, case, scene, cast.admin)
    assert code_for(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert world.db.commits == commits
