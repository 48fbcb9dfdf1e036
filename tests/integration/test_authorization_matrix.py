"""The authorization matrix, data-driven: every organization-scoped RPC, every kind of
caller and an organization that exists or not, on SQLite and PostgreSQL (`api`).

One `Case` per RPC names the permission it needs (API.md, "Authorization") and builds a
request from a `Context`. A new organization-scoped RPC (invitations, workspaces) joins
the matrix by appending one entry to `CASES` (and, if it needs a target that does not
exist yet, one field to `Context` filled in by `Cast.new_org`).

Expectations:
- non-member (and any caller on an organization that does not exist): NOT_FOUND, with the
  same message and reason whether or not the organization exists;
- member lacking the permission: PERMISSION_DENIED;
- member holding it, or platform caller: no authorization error (business errors such as
  "undelete an active organization" are fine);
- platform caller on an organization that does not exist: NOT_FOUND, except
  CheckPermission, which answers allowed=false.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure
from tests.support.permissions import BUILT_IN

Code = grpc.StatusCode
AUTHORIZATION_ERRORS = {Code.NOT_FOUND, Code.PERMISSION_DENIED}

# Not a permission: TransferOwnership takes the owner role itself.
OWNER_ROLE = "role:owner"
NON_MEMBER = "non-member"
PLATFORM = "platform"
CALLERS = [NON_MEMBER, "viewer", "developer", "admin", "owner", PLATFORM]


# --- the table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a request may name: an organization and things that exist inside it."""

    organization_id: str
    member_id: str  # a viewer who is neither the caller nor the owner
    outsider_id: str  # a provisioned user who is not a member
    role_name: str  # a custom role nobody holds
    invitation_id: str  # a pending invitation, sent by the owner
    workspace_id: str  # a workspace other than `default`, created by the owner
    domain_name: str  # a PENDING domain, claimed by the owner (DNS has no record for it)
    watch_cursor: str  # a WatchEvents cursor before the newest event
    unique: str  # fresh for every request, for names

    def missing(self) -> Context:
        """The same request, about an organization that does not exist (for RPCs that
        address an invitation by id alone: an invitation that does not exist)."""
        return replace(self, organization_id=str(uuid.uuid4()), invitation_id=str(uuid.uuid4()))


def days(n: int) -> Duration:
    duration = Duration()
    duration.FromTimedelta(timedelta(days=n))
    return duration


def in_days(n: int) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromDatetime(datetime.now(UTC) + timedelta(days=n))
    return timestamp


@dataclass(frozen=True)
class Case:
    method: str
    permission: str | None  # None: being a member is enough
    request: Callable[[Context], Message]
    mutates: bool  # mutating calls get an organization of their own
    # A request about the same organization that is invalid in itself (bad field), for
    # checking that authorization comes before validation; None if there is none.
    invalid: Callable[[Context], Message] | None = None
    streaming: bool = False  # the call's outcome is its first message

    def call(self, client: Client, context: Context) -> Any:
        return self._outcome(getattr(client, self.method)(self.request(context)))

    def call_invalid(self, client: Client, context: Context) -> Any:
        assert self.invalid is not None
        return self._outcome(getattr(client, self.method)(self.invalid(context)))

    def _outcome(self, reply: Any) -> Any:
        if not self.streaming:
            return reply
        try:
            return next(reply)
        finally:
            reply.cancel()

    def __str__(self) -> str:
        return self.method


def mask(*paths: str) -> FieldMask:
    return FieldMask(paths=list(paths))


def about_org(request: Callable[..., Message]) -> Callable[[Context], Message]:
    """A request that names the organization and nothing else."""
    return lambda c: request(organization_id=c.organization_id)


def listing(method: str, permission: str) -> Case:
    """A List RPC of the organization's things; a negative page size is invalid."""
    request = getattr(rpc, f"{method}Request")
    return Case(
        method,
        permission,
        about_org(request),
        mutates=False,
        invalid=lambda c: request(organization_id=c.organization_id, page_size=-1),
    )


CASES: list[Case] = [
    Case(
        "GetOrganization", "organizations.get", about_org(rpc.GetOrganizationRequest), mutates=False
    ),
    Case(
        "UpdateOrganization",
        "organizations.update",
        lambda c: rpc.UpdateOrganizationRequest(
            organization=pb.Organization(id=c.organization_id, description=f"d {c.unique}"),
            update_mask=mask("description"),
        ),
        mutates=True,
        invalid=lambda c: rpc.UpdateOrganizationRequest(
            organization=pb.Organization(id=c.organization_id, name=" "), update_mask=mask("name")
        ),
    ),
    Case(
        "DeleteOrganization",
        "organizations.delete",
        about_org(rpc.DeleteOrganizationRequest),
        mutates=True,
    ),
    Case(
        "UndeleteOrganization",
        "organizations.undelete",
        about_org(rpc.UndeleteOrganizationRequest),
        mutates=True,
    ),
    listing("ListMembers", "members.list"),
    Case(
        "AddMember",
        "members.add",
        lambda c: rpc.AddMemberRequest(
            organization_id=c.organization_id, user_id=c.outsider_id, role="viewer"
        ),
        mutates=True,
        invalid=lambda c: rpc.AddMemberRequest(organization_id=c.organization_id, role="viewer"),
    ),
    Case(
        "UpdateMember",
        "members.update",
        lambda c: rpc.UpdateMemberRequest(
            organization_id=c.organization_id, user_id=c.member_id, role="developer"
        ),
        mutates=True,
        invalid=lambda c: rpc.UpdateMemberRequest(
            organization_id=c.organization_id, user_id=c.member_id, role=""
        ),
    ),
    Case(
        "RemoveMember",
        "members.remove",
        lambda c: rpc.RemoveMemberRequest(organization_id=c.organization_id, user_id=c.member_id),
        mutates=True,
    ),
    Case(
        "TransferOwnership",
        OWNER_ROLE,
        lambda c: rpc.TransferOwnershipRequest(
            organization_id=c.organization_id, user_id=c.member_id
        ),
        mutates=True,
        invalid=about_org(rpc.TransferOwnershipRequest),
    ),
    listing("ListRoles", "roles.list"),
    Case(
        "CreateRole",
        "roles.create",
        lambda c: rpc.CreateRoleRequest(
            organization_id=c.organization_id,
            name=f"role-{c.unique}",
            permissions=["organizations.get"],
        ),
        mutates=True,
        invalid=lambda c: rpc.CreateRoleRequest(
            organization_id=c.organization_id,
            name=f"role-{c.unique}",
            permissions=["organizations.delete"],
        ),
    ),
    Case(
        "UpdateRole",
        "roles.update",
        lambda c: rpc.UpdateRoleRequest(
            role=pb.Role(organization_id=c.organization_id, name=c.role_name, description=c.unique),
            update_mask=mask("description"),
        ),
        mutates=True,
        invalid=lambda c: rpc.UpdateRoleRequest(
            role=pb.Role(
                organization_id=c.organization_id, name=c.role_name, permissions=["no.such"]
            ),
            update_mask=mask("permissions"),
        ),
    ),
    Case(
        "DeleteRole",
        "roles.delete",
        lambda c: rpc.DeleteRoleRequest(organization_id=c.organization_id, name=c.role_name),
        mutates=True,
    ),
    Case(
        "CheckPermission",
        None,  # about oneself, membership is enough
        lambda c: rpc.CheckPermissionRequest(
            organization_id=c.organization_id, permission="organizations.delete"
        ),
        mutates=False,
        invalid=lambda c: rpc.CheckPermissionRequest(
            organization_id=c.organization_id, permission="no.such"
        ),
    ),
    listing("ListAuditEvents", "audit.list"),
    Case(
        "WatchEvents",
        "audit.list",
        lambda c: rpc.WatchEventsRequest(
            organization_id=c.organization_id, start_cursor=c.watch_cursor
        ),
        mutates=False,
        invalid=lambda c: rpc.WatchEventsRequest(
            organization_id=c.organization_id, start_cursor="not a cursor"
        ),
        streaming=True,
    ),
    Case(
        "CreateInvitation",
        "invitations.create",
        lambda c: rpc.CreateInvitationRequest(
            organization_id=c.organization_id, email=f"new-{c.unique}@example.com", role="viewer"
        ),
        mutates=True,
        invalid=lambda c: rpc.CreateInvitationRequest(
            organization_id=c.organization_id, email="", role="viewer"
        ),
    ),
    Case(
        "BatchCreateInvitations",
        "invitations.create",
        lambda c: rpc.BatchCreateInvitationsRequest(
            organization_id=c.organization_id,
            invitations=[rpc.BatchInvitation(email=f"batch-{c.unique}@example.com", role="viewer")],
        ),
        mutates=True,
        invalid=lambda c: rpc.BatchCreateInvitationsRequest(
            organization_id=c.organization_id,
            invitations=[rpc.BatchInvitation(email="not an email", role="viewer")],
        ),
    ),
    listing("ListInvitations", "invitations.list"),
    Case(
        "GetInvitation",
        "invitations.list",  # or being the invitee, which no caller here is
        lambda c: rpc.GetInvitationRequest(invitation_id=c.invitation_id),
        mutates=False,
    ),
    Case(
        "UpdateInvitation",
        "invitations.update",
        lambda c: rpc.UpdateInvitationRequest(
            invitation=pb.Invitation(id=c.invitation_id, role="developer"), update_mask=mask("role")
        ),
        mutates=True,
        invalid=lambda c: rpc.UpdateInvitationRequest(
            invitation=pb.Invitation(id=c.invitation_id, expire_time=in_days(31)),
            update_mask=mask("expire_time"),
        ),
    ),
    Case(
        "RevokeInvitation",
        "invitations.revoke",
        lambda c: rpc.RevokeInvitationRequest(invitation_id=c.invitation_id),
        mutates=True,
    ),
    Case(
        "ResendInvitation",
        "invitations.create",
        lambda c: rpc.ResendInvitationRequest(invitation_id=c.invitation_id),
        mutates=True,
        invalid=lambda c: rpc.ResendInvitationRequest(invitation_id=c.invitation_id, ttl=days(31)),
    ),
    Case(
        "CreateWorkspace",
        "workspaces.create",
        lambda c: rpc.CreateWorkspaceRequest(
            organization_id=c.organization_id, name=f"Workspace {c.unique}"
        ),
        mutates=True,
        invalid=lambda c: rpc.CreateWorkspaceRequest(organization_id=c.organization_id, name=""),
    ),
    Case(
        "GetWorkspace",
        "workspaces.get",
        lambda c: rpc.GetWorkspaceRequest(
            organization_id=c.organization_id, workspace_id=c.workspace_id
        ),
        mutates=False,
    ),
    listing("ListWorkspaces", "workspaces.list"),
    Case(
        "UpdateWorkspace",
        "workspaces.update",
        lambda c: rpc.UpdateWorkspaceRequest(
            workspace=pb.Workspace(
                organization_id=c.organization_id, id=c.workspace_id, description=c.unique
            ),
            update_mask=mask("description"),
        ),
        mutates=True,
        invalid=lambda c: rpc.UpdateWorkspaceRequest(
            workspace=pb.Workspace(organization_id=c.organization_id, id=c.workspace_id, name=""),
            update_mask=mask("name"),
        ),
    ),
    Case(
        "DeleteWorkspace",
        "workspaces.delete",
        lambda c: rpc.DeleteWorkspaceRequest(
            organization_id=c.organization_id, workspace_id=c.workspace_id
        ),
        mutates=True,
        invalid=lambda c: rpc.DeleteWorkspaceRequest(
            organization_id=c.organization_id, workspace_id=""
        ),
    ),
    Case(
        "CreateDomain",
        "domains.manage",
        lambda c: rpc.CreateDomainRequest(
            organization_id=c.organization_id, name=f"d{c.unique}.example"
        ),
        mutates=True,
        invalid=lambda c: rpc.CreateDomainRequest(
            organization_id=c.organization_id, name="not a domain"
        ),
    ),
    Case(
        "VerifyDomain",
        "domains.manage",
        lambda c: rpc.VerifyDomainRequest(organization_id=c.organization_id, name=c.domain_name),
        mutates=True,
        invalid=lambda c: rpc.VerifyDomainRequest(organization_id=c.organization_id, name=""),
    ),
    Case("ListDomains", "domains.list", about_org(rpc.ListDomainsRequest), mutates=False),
    Case(
        "DeleteDomain",
        "domains.manage",
        lambda c: rpc.DeleteDomainRequest(organization_id=c.organization_id, name=c.domain_name),
        mutates=True,
        invalid=lambda c: rpc.DeleteDomainRequest(
            organization_id=c.organization_id, name="-bad-.example"
        ),
    ),
]

# Invitation RPCs addressed to the invitee rather than to an organization's members.
ADDRESSED_TO_INVITEE = {"AcceptInvitation", "DeclineInvitation", "ListMyInvitations"}


# --- the cast: one user per kind of caller, and organizations with all of them ---------


class Cast:
    """The same users in every organization of a module: the owner creates each one,
    adds an admin, a developer and two viewers (one of them the target) by user_id, and
    sends an invitation, creates a workspace and claims a domain to target."""

    def __init__(self, api: Api) -> None:
        self.callers: dict[str, Client] = {
            name: api.platform() if name == PLATFORM else api.client() for name in CALLERS
        }
        self.target = api.client()
        self.outsider = api.client()
        self.ids = {name: client.user_id for name, client in self.callers.items()}
        self.target_id = self.target.user_id
        self.outsider_id = self.outsider.user_id  # provisioned, never added

    def new_org(self) -> Context:
        owner = self.callers["owner"]
        organization_id = owner.create_org().id
        members = [(self.ids[r], r) for r in ("admin", "developer", "viewer")]
        for user_id, role in [*members, (self.target_id, "viewer")]:
            owner.AddMember(
                rpc.AddMemberRequest(organization_id=organization_id, user_id=user_id, role=role)
            )
        role_name = f"custom-{uuid.uuid4().hex[:8]}"
        owner.CreateRole(
            rpc.CreateRoleRequest(
                organization_id=organization_id,
                name=role_name,
                permissions=["organizations.get", "members.list"],
            )
        )
        invitation_id = owner.CreateInvitation(
            rpc.CreateInvitationRequest(
                organization_id=organization_id,
                email=f"invitee-{uuid.uuid4().hex[:8]}@example.com",
                role="viewer",
            )
        ).invitation.id
        workspace_id = owner.CreateWorkspace(
            rpc.CreateWorkspaceRequest(
                organization_id=organization_id, name=f"Workspace {uuid.uuid4().hex[:8]}"
            )
        ).workspace.id
        domain_name = owner.CreateDomain(
            rpc.CreateDomainRequest(
                organization_id=organization_id, name=f"d{uuid.uuid4().hex[:12]}.example"
            )
        ).domain.name
        newest = owner.ListAuditEvents(
            rpc.ListAuditEventsRequest(organization_id=organization_id, page_size=1)
        )
        second_newest = owner.ListAuditEvents(
            rpc.ListAuditEventsRequest(
                organization_id=organization_id, page_size=1, page_token=newest.next_page_token
            )
        )
        return Context(
            organization_id,
            self.target_id,
            self.outsider_id,
            role_name,
            invitation_id,
            workspace_id,
            domain_name,
            second_newest.watch_cursor,
            "",
        )

    def delete(self, context: Context) -> Context:
        self.callers["owner"].DeleteOrganization(
            rpc.DeleteOrganizationRequest(organization_id=context.organization_id)
        )
        return context


@pytest.fixture(scope="module")
def cast(api: Api) -> Cast:
    return Cast(api)


@pytest.fixture(scope="module")
def shared_org(cast: Cast) -> Context:
    """One organization for every call that changes nothing."""
    return cast.new_org()


@pytest.fixture(scope="module")
def shared_deleted_org(cast: Cast) -> Context:
    return cast.delete(cast.new_org())


@pytest.fixture
def context(case: Case, cast: Cast, shared_org: Context) -> Context:
    base = cast.new_org() if case.mutates else shared_org
    return replace(base, unique=uuid.uuid4().hex[:10])


@pytest.fixture
def deleted_context(case: Case, cast: Cast, shared_deleted_org: Context) -> Context:
    base = cast.delete(cast.new_org()) if case.mutates else shared_deleted_org
    return replace(base, unique=uuid.uuid4().hex[:10])


# --- the expectations ----------------------------------------------------------------


def holds(caller: str, permission: str | None) -> bool:
    if caller == PLATFORM:
        return True
    if caller == NON_MEMBER:
        return False
    if permission == OWNER_ROLE:
        return caller == "owner"
    return permission is None or permission in BUILT_IN[caller]


def status_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    """The call's status code and message (OK when it succeeds)."""
    try:
        call()
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return Code.OK, ""


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_existing_organization(cast: Cast, case: Case, caller: str, context: Context) -> None:
    client = cast.callers[caller]
    where = f"{case.method} by {caller}"
    if caller == NON_MEMBER:
        hidden = failure(lambda: case.call(client, context))
        assert hidden.code == Code.NOT_FOUND, f"{where}: {hidden}"
        missing = failure(lambda: case.call(client, context.missing()))
        # No existence leak: not being a member looks exactly like "does not exist".
        assert (hidden.message, hidden.reason) == (missing.message, missing.reason), where
        return
    if not holds(caller, case.permission):
        denied = failure(lambda: case.call(client, context))
        assert denied.code == Code.PERMISSION_DENIED, f"{where}: {denied}"
        return
    code, message = status_of(lambda: case.call(client, context))
    assert code not in AUTHORIZATION_ERRORS, f"{where}: {code} {message}"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_missing_organization(cast: Cast, case: Case, caller: str, shared_org: Context) -> None:
    client = cast.callers[caller]
    context = replace(shared_org, unique=uuid.uuid4().hex[:10]).missing()
    if caller == PLATFORM and case.method == "CheckPermission":
        # Platform callers never get NOT_FOUND from CheckPermission.
        reply = case.call(client, context)
        assert (reply.allowed, reply.role) == (False, "")
        return
    result = failure(lambda: case.call(client, context))
    assert result.code == Code.NOT_FOUND, f"{case.method} by {caller}: {result}"
    # Whoever asks, "no such organization" reads the same.
    reference = failure(lambda: case.call(cast.callers[NON_MEMBER], context))
    assert (result.message, result.reason) == (reference.message, reference.reason)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_deleted_organization_exists_only_for_owners(
    cast: Cast, case: Case, caller: str, deleted_context: Context
) -> None:
    """A soft-deleted organization exists only for those who may undelete it."""
    client = cast.callers[caller]
    where = f"{case.method} by {caller}"
    if caller in (PLATFORM, "owner"):
        if caller == PLATFORM and case.method == "CheckPermission":
            assert not case.call(client, deleted_context).allowed
            return
        code, message = status_of(lambda: case.call(client, deleted_context))
        assert code not in AUTHORIZATION_ERRORS, f"{where}: {code} {message}"
        return
    hidden = failure(lambda: case.call(client, deleted_context))
    assert hidden.code == Code.NOT_FOUND, f"{where}: {hidden}"
    missing = failure(lambda: case.call(client, deleted_context.missing()))
    assert (hidden.message, hidden.reason) == (missing.message, missing.reason), where


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case", [c for c in CASES if c.invalid], ids=str)
def test_authorization_comes_before_validation(
    cast: Cast, case: Case, caller: str, shared_org: Context
) -> None:
    """An invalid request is judged like a valid one until the caller is authorized:
    non-members learn nothing (NOT_FOUND), members without the permission are refused."""
    client = cast.callers[caller]
    context = replace(shared_org, unique=uuid.uuid4().hex[:10])
    result = failure(lambda: case.call_invalid(client, context))
    where = f"invalid {case.method} by {caller}: {result}"
    if caller == NON_MEMBER:
        missing = failure(lambda: case.call(client, context.missing()))
        assert (result.code, result.message, result.reason) == (
            Code.NOT_FOUND,
            missing.message,
            missing.reason,
        ), where
    elif not holds(caller, case.permission):
        assert result.code == Code.PERMISSION_DENIED, where
    else:
        assert result.code == Code.INVALID_ARGUMENT, where
        assert result.violations, where


def test_matrix_covers_every_organization_scoped_rpc() -> None:
    """Every RPC of the service that names an organization, or something inside one
    (an invitation by id, unless addressed to the invitee), is in the matrix."""
    service = rpc.DESCRIPTOR.services_by_name["OrganizationService"]
    scoped = set()
    for method in service.methods:
        if method.name in ADDRESSED_TO_INVITEE:
            continue
        fields = {field.name for field in method.input_type.fields}
        nested = {
            field.message_type.name
            for field in method.input_type.fields
            if field.message_type is not None
        }
        if fields & {"organization_id", "invitation_id"} or nested & {
            "Organization",
            "Role",
            "Workspace",
            "Invitation",
        }:
            scoped.add(method.name)
    covered = {case.method for case in CASES}
    assert covered <= scoped, f"not organization-scoped RPCs: {sorted(covered - scoped)}"
    assert not scoped - covered, f"append matrix entries for: {sorted(scoped - covered)}"
