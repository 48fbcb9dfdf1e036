"""Members, roles, CheckPermission, GetCurrentUser memberships and the audit log, against
a real server on SQLite and PostgreSQL (the `api` fixture).

The server is shared by the session: every test makes fresh users and organizations.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb
from sqlalchemy import text

from orgservice.domain.permissions import BUILT_IN_ROLES
from orgservice.domain.permissions import VIEWER
from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure
from tests.support.clients import Team
from tests.support.clients import all_items
from tests.support.clients import all_pages
from tests.support.clients import tag
from tests.support.permissions import BUILT_IN

Code = grpc.StatusCode

ALL_PERMISSIONS = sorted(BUILT_IN["owner"])
# Custom roles below hold what a viewer holds (so they may grant viewer) and one more.
VIEWER_PERMISSIONS = next(role.permissions for role in BUILT_IN_ROLES if role.name == VIEWER)


# --- helpers -------------------------------------------------------------------------


@pytest.fixture
def team(api: Api) -> Team:
    return Team.new(api)


def add(client: Client, organization_id: str, role: str, **user: str) -> pb.Member:
    request = rpc.AddMemberRequest(organization_id=organization_id, role=role, **user)
    member: pb.Member = client.AddMember(request).member
    return member


def set_role(client: Client, organization_id: str, user_id: str, role: str) -> pb.Member:
    request = rpc.UpdateMemberRequest(organization_id=organization_id, user_id=user_id, role=role)
    member: pb.Member = client.UpdateMember(request).member
    return member


def remove(client: Client, organization_id: str, user_id: str) -> None:
    client.RemoveMember(rpc.RemoveMemberRequest(organization_id=organization_id, user_id=user_id))


def members(client: Client, organization_id: str, role: str = "") -> list[pb.Member]:
    return all_items(
        lambda token: client.ListMembers(
            rpc.ListMembersRequest(organization_id=organization_id, role=role, page_token=token)
        ),
        "members",
    )


def roles_of(members_: list[pb.Member]) -> dict[str, str]:
    return {m.user.id: m.role for m in members_}


def list_roles(client: Client, organization_id: str) -> list[pb.Role]:
    return list(client.ListRoles(rpc.ListRolesRequest(organization_id=organization_id)).roles)


def create_role(
    client: Client, organization_id: str, name: str, permissions: list[str], **fields: Any
) -> pb.Role:
    request = rpc.CreateRoleRequest(
        organization_id=organization_id, name=name, permissions=permissions, **fields
    )
    role: pb.Role = client.CreateRole(request).role
    return role


def check(client: Client, organization_id: str, permission: str, **fields: str) -> Any:
    return client.CheckPermission(
        rpc.CheckPermissionRequest(organization_id=organization_id, permission=permission, **fields)
    )


def events(
    client: Client, organization_id: str, action: str = "", page_size: int = 0
) -> tuple[list[pb.AuditEvent], list[rpc.ListAuditEventsResponse]]:
    """Every matching event, and every page they came on."""
    pages = all_pages(
        lambda token: client.ListAuditEvents(
            rpc.ListAuditEventsRequest(
                organization_id=organization_id,
                action=action,
                page_size=page_size,
                page_token=token,
            )
        )
    )
    return [event for page in pages for event in page.events], pages


def workspace_ids(api: Api, organization_id: str) -> list[str]:
    """Workspace ids straight from the server's database (no workspace RPCs yet)."""
    with api.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id FROM workspaces WHERE organization_id = :org"), {"org": organization_id}
        )
        return [str(row[0]) for row in rows]


# --- ListMembers ---------------------------------------------------------------------


def test_list_members_filters_by_role(team: Team) -> None:
    _, second_admin = team.newcomer("admin")
    owners = team["owner"].ListMembers(
        rpc.ListMembersRequest(organization_id=team.id, role="owner")
    )
    assert [m.user.id for m in owners.members] == [team.ids["owner"]]
    assert owners.total_size == 1
    assert all(m.role == "owner" for m in owners.members)
    admins = members(team["viewer"], team.id, role="admin")
    assert [m.user.id for m in admins] == [team.ids["admin"], second_admin]
    assert roles_of(members(team["viewer"], team.id)) == {
        **{user_id: role for role, user_id in team.ids.items()},
        second_admin: "admin",
    }


def test_list_members_pages_without_duplicates(api: Api) -> None:
    owner = api.client()
    org = owner.create_org()
    joined = [owner.user_id]
    for _ in range(6):
        joined.append(api.client().user_id)
        add(owner, org.id, "viewer", user_id=joined[-1])
    pages = all_pages(
        lambda token: owner.ListMembers(
            rpc.ListMembersRequest(organization_id=org.id, page_size=2, page_token=token)
        )
    )
    found = [member for page in pages for member in page.members]
    assert [len(page.members) for page in pages] == [2, 2, 2, 1]
    assert {page.total_size for page in pages} == {7}
    assert [m.user.id for m in found] == joined  # in the order they joined, once each
    assert all(m.organization_id == org.id for m in found)


# --- AddMember -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value_of"),
    [
        ("user_id", lambda user: user.id),
        ("username", lambda user: user.username),
        ("email", lambda user: user.email.swapcase()),  # case-insensitive
    ],
    ids=["user_id", "username", "email"],
)
def test_add_member_by(team: Team, field: str, value_of: Callable[[pb.User], str]) -> None:
    newcomer = team.api.client(preferred_username=f"u-{tag()}", email=f"New.{tag()}@Example.com")
    user = newcomer.GetCurrentUser(rpc.GetCurrentUserRequest()).user
    member = add(team["admin"], team.id, "developer", **{field: value_of(user)})
    assert (member.organization_id, member.user.id, member.role) == (team.id, user.id, "developer")
    assert member.user.username == user.username
    assert member.HasField("create_time")
    assert roles_of(members(team["owner"], team.id))[user.id] == "developer"
    org = newcomer.GetOrganization(rpc.GetOrganizationRequest(organization_id=team.id))
    assert org.organization.member_count == 5


@pytest.mark.parametrize("field", ["user_id", "username", "email"])
def test_add_unknown_user_is_not_found(team: Team, field: str) -> None:
    value = {
        "user_id": str(uuid.uuid4()),
        "username": f"nobody-{tag()}",
        "email": f"nobody-{tag()}@example.com",
    }[field]
    result = failure(lambda: add(team["owner"], team.id, "viewer", **{field: value}))
    assert (result.code, result.reason) == (Code.NOT_FOUND, "USER_NOT_FOUND")


def test_add_existing_member_is_already_exists(team: Team) -> None:
    result = failure(lambda: add(team["owner"], team.id, "admin", user_id=team.ids["viewer"]))
    assert (result.code, result.reason) == (Code.ALREADY_EXISTS, "ALREADY_MEMBER")
    assert roles_of(members(team["owner"], team.id))[team.ids["viewer"]] == "viewer"


@pytest.mark.parametrize("role", ["", "superuser", "Owner"])
def test_add_with_unknown_role_is_invalid(team: Team, role: str) -> None:
    outsider = team.api.client().user_id
    result = failure(lambda: add(team["owner"], team.id, role, user_id=outsider))
    assert result.code == Code.INVALID_ARGUMENT
    assert result.violations == ["role"]
    assert outsider not in roles_of(members(team["owner"], team.id))


# --- owner rules ---------------------------------------------------------------------


def test_admin_cannot_grant_owner(team: Team) -> None:
    outsider = team.api.client().user_id
    result = failure(lambda: add(team["admin"], team.id, "owner", user_id=outsider))
    assert result.code == Code.PERMISSION_DENIED
    result = failure(lambda: set_role(team["admin"], team.id, team.ids["viewer"], "owner"))
    assert result.code == Code.PERMISSION_DENIED
    assert [m.user.id for m in members(team["owner"], team.id, role="owner")] == [team.ids["owner"]]
    assert outsider not in roles_of(members(team["owner"], team.id))


@pytest.mark.parametrize(
    "action",
    [
        lambda t, owner_id: set_role(t["admin"], t.id, owner_id, "admin"),
        lambda t, owner_id: set_role(t["admin"], t.id, owner_id, "viewer"),
        lambda t, owner_id: remove(t["admin"], t.id, owner_id),
    ],
    ids=["demote-to-admin", "demote-to-viewer", "remove"],
)
def test_admin_cannot_demote_or_remove_an_owner(
    team: Team, action: Callable[[Team, str], Any]
) -> None:
    _, second_owner = team.newcomer("owner")  # so that LAST_OWNER is not what stops it
    for owner_id in (team.ids["owner"], second_owner):
        result = failure(partial(action, team, owner_id))
        assert result.code == Code.PERMISSION_DENIED
    owners = members(team["viewer"], team.id, role="owner")
    assert [m.user.id for m in owners] == [team.ids["owner"], second_owner]


def test_owner_adds_a_second_owner_who_demotes_the_first(team: Team) -> None:
    second = team.api.client()
    second_id = second.user_id
    assert add(team["owner"], team.id, "owner", user_id=second_id).role == "owner"
    demoted = set_role(second, team.id, team.ids["owner"], "admin")
    assert (demoted.user.id, demoted.role) == (team.ids["owner"], "admin")
    assert [m.user.id for m in members(second, team.id, role="owner")] == [second_id]
    # The former owner is an admin now: the owner rules apply to them.
    result = failure(lambda: set_role(team["owner"], team.id, second_id, "admin"))
    assert result.code == Code.PERMISSION_DENIED


@pytest.mark.parametrize(
    "action",
    [
        lambda t, p: remove(t["owner"], t.id, t.ids["owner"]),
        lambda t, p: set_role(t["owner"], t.id, t.ids["owner"], "admin"),
        lambda t, p: remove(p, t.id, t.ids["owner"]),
        lambda t, p: set_role(p, t.id, t.ids["owner"], "viewer"),
    ],
    ids=["leave", "demote-self", "platform-removes", "platform-demotes"],
)
def test_last_owner_cannot_leave_or_be_demoted(
    team: Team, action: Callable[[Team, Client], Any]
) -> None:
    platform = team.api.platform()
    result = failure(lambda: action(team, platform))
    assert (result.code, result.reason) == (Code.FAILED_PRECONDITION, "LAST_OWNER")
    assert [m.user.id for m in members(team["owner"], team.id, role="owner")] == [team.ids["owner"]]


@pytest.mark.parametrize("role", ["viewer", "developer", "admin", "owner"])
def test_any_member_may_leave(team: Team, role: str) -> None:
    leaver, leaver_id = team.newcomer(role)
    remove(leaver, team.id, leaver_id)
    assert leaver_id not in roles_of(members(team["owner"], team.id))
    gone = failure(
        lambda: leaver.GetOrganization(rpc.GetOrganizationRequest(organization_id=team.id))
    )
    assert gone.code == Code.NOT_FOUND
    latest = (
        team["owner"]
        .ListAuditEvents(rpc.ListAuditEventsRequest(organization_id=team.id, page_size=1))
        .events[0]
    )
    assert (latest.action, latest.target_id, latest.actor_user_id) == (
        "member.left",
        leaver_id,
        leaver_id,
    )


def test_removing_someone_else_takes_members_remove(team: Team) -> None:
    result = failure(lambda: remove(team["developer"], team.id, team.ids["viewer"]))
    assert result.code == Code.PERMISSION_DENIED
    remove(team["admin"], team.id, team.ids["viewer"])
    assert team.ids["viewer"] not in roles_of(members(team["owner"], team.id))
    result = failure(lambda: remove(team["admin"], team.id, team.ids["viewer"]))
    assert (result.code, result.reason) == (Code.NOT_FOUND, "MEMBER_NOT_FOUND")


# --- roles ---------------------------------------------------------------------------


def test_list_roles_shows_built_ins_first_with_the_contract_permissions(team: Team) -> None:
    custom = create_role(team["owner"], team.id, f"aa-{tag()}", ["organizations.get"])
    roles = list_roles(team["viewer"], team.id)
    assert [r.name for r in roles] == ["owner", "admin", "developer", "viewer", custom.name]
    for role in roles[:4]:
        assert role.built_in
        assert role.organization_id == team.id
        assert len(role.permissions) == len(set(role.permissions)), role.name
        assert set(role.permissions) == BUILT_IN[role.name], role.name
    assert not roles[4].built_in
    assert list(roles[4].permissions) == ["organizations.get"]


def test_create_role_dedupes_and_orders_permissions(team: Team) -> None:
    asked = ["roles.list", "organizations.get", "roles.list", "members.list", "workspaces.create"]
    first = create_role(team["admin"], team.id, f"a-{tag()}", asked, description="Reads")
    second = create_role(team["admin"], team.id, f"b-{tag()}", asked[::-1])
    assert sorted(first.permissions) == sorted(set(asked))
    assert list(first.permissions) == list(second.permissions)  # one canonical order
    assert (first.organization_id, first.description, first.built_in) == (team.id, "Reads", False)
    listed = {r.name: r for r in list_roles(team["owner"], team.id)}
    assert listed[first.name] == first


@pytest.mark.parametrize(
    ("permissions", "bad_field"),
    [
        (["organizations.get", "organizations.fly"], "permissions[1]"),
        (["organizations.delete"], "permissions[0]"),
        (["members.list", "roles.list", "organizations.undelete"], "permissions[2]"),
        ([""], "permissions[0]"),
    ],
)
def test_create_role_rejects_permissions_it_cannot_hold(
    team: Team, permissions: list[str], bad_field: str
) -> None:
    name = f"bad-{tag()}"
    result = failure(lambda: create_role(team["owner"], team.id, name, permissions))
    assert result.code == Code.INVALID_ARGUMENT
    assert result.violations == [bad_field]
    assert name not in {r.name for r in list_roles(team["owner"], team.id)}


def test_create_role_with_a_taken_name_is_already_exists(team: Team) -> None:
    name = f"dup-{tag()}"
    create_role(team["owner"], team.id, name, ["organizations.get"])
    result = failure(lambda: create_role(team["owner"], team.id, name, ["members.list"]))
    assert (result.code, result.reason) == (Code.ALREADY_EXISTS, "ROLE_EXISTS")
    (role,) = [r for r in list_roles(team["owner"], team.id) if r.name == name]
    assert list(role.permissions) == ["organizations.get"]


@pytest.mark.parametrize("name", ["owner", "admin", "developer", "viewer"])
def test_create_role_with_a_built_in_name_is_already_exists(team: Team, name: str) -> None:
    result = failure(lambda: create_role(team["owner"], team.id, name, ["organizations.get"]))
    assert result.code == Code.ALREADY_EXISTS
    (role,) = [r for r in list_roles(team["owner"], team.id) if r.name == name]
    assert role.built_in
    assert set(role.permissions) == BUILT_IN[name]


def test_create_role_is_idempotent_by_request_id(team: Team) -> None:
    request_id, name = str(uuid.uuid4()), f"once-{tag()}"
    first = create_role(team["owner"], team.id, name, ["members.list"], request_id=request_id)
    again = create_role(team["owner"], team.id, name, ["members.list"], request_id=request_id)
    assert again == first
    assert [r.name for r in list_roles(team["owner"], team.id)].count(name) == 1
    created, _ = events(team["owner"], team.id, action="role.created")
    assert [e.target_id for e in created] == [name]


def test_custom_role_cannot_grant_permissions_it_lacks(team: Team) -> None:
    adder_role = create_role(
        team["owner"], team.id, f"adder-{tag()}", [*VIEWER_PERMISSIONS, "members.add"]
    )
    adder, _ = team.newcomer(adder_role.name)
    for escalation in ("admin", "owner", "developer"):
        outsider = team.api.client().user_id
        result = failure(partial(add, adder, team.id, escalation, user_id=outsider))
        assert result.code == Code.PERMISSION_DENIED, escalation
        assert outsider not in roles_of(members(team["owner"], team.id))
    # Roles whose permissions the caller holds are fine: viewer, and its own role.
    for grantable in ("viewer", adder_role.name):
        outsider = team.api.client().user_id
        assert add(adder, team.id, grantable, user_id=outsider).role == grantable


def test_custom_role_cannot_create_a_role_with_permissions_it_lacks(team: Team) -> None:
    maker_role = create_role(
        team["owner"], team.id, f"maker-{tag()}", [*VIEWER_PERMISSIONS, "roles.create"]
    )
    maker, _ = team.newcomer(maker_role.name)
    result = failure(lambda: create_role(maker, team.id, f"x-{tag()}", ["members.add"]))
    assert result.code == Code.PERMISSION_DENIED
    assert create_role(maker, team.id, f"y-{tag()}", ["members.list"]).permissions == [
        "members.list"
    ]


@pytest.mark.parametrize("path", ["description", "permissions"])
def test_update_role_changes_only_the_masked_field(team: Team, path: str) -> None:
    name = f"upd-{tag()}"
    before = create_role(team["owner"], team.id, name, ["organizations.get"], description="before")
    change = pb.Role(
        organization_id=team.id,
        name=name,
        description="after",
        permissions=["members.list", "roles.list"],
    )
    updated = (
        team["admin"]
        .UpdateRole(rpc.UpdateRoleRequest(role=change, update_mask=FieldMask(paths=[path])))
        .role
    )
    if path == "description":
        assert (updated.description, list(updated.permissions)) == ("after", ["organizations.get"])
    else:
        assert updated.description == before.description
        assert sorted(updated.permissions) == ["members.list", "roles.list"]
    listed = {r.name: r for r in list_roles(team["owner"], team.id)}
    assert listed[name] == updated


@pytest.mark.parametrize("name", ["owner", "admin", "developer", "viewer"])
@pytest.mark.parametrize("operation", ["update", "delete"])
def test_built_in_roles_cannot_be_changed_or_deleted(team: Team, name: str, operation: str) -> None:
    def call() -> Any:
        if operation == "delete":
            return team["owner"].DeleteRole(
                rpc.DeleteRoleRequest(organization_id=team.id, name=name)
            )
        role = pb.Role(organization_id=team.id, name=name, description="mine now")
        return team["owner"].UpdateRole(
            rpc.UpdateRoleRequest(role=role, update_mask=FieldMask(paths=["description"]))
        )

    result = failure(call)
    assert (result.code, result.reason) == (Code.FAILED_PRECONDITION, "BUILT_IN_ROLE")
    (role,) = [r for r in list_roles(team["owner"], team.id) if r.name == name]
    assert role.description != "mine now"


def test_role_held_by_a_member_cannot_be_deleted(team: Team) -> None:
    name = f"held-{tag()}"
    create_role(team["owner"], team.id, name, ["organizations.get"])
    _, holder = team.newcomer(name)
    delete = rpc.DeleteRoleRequest(organization_id=team.id, name=name)
    result = failure(lambda: team["admin"].DeleteRole(delete))
    assert (result.code, result.reason) == (Code.FAILED_PRECONDITION, "ROLE_IN_USE")
    set_role(team["admin"], team.id, holder, "viewer")
    team["admin"].DeleteRole(delete)
    assert name not in {r.name for r in list_roles(team["owner"], team.id)}
    gone = failure(lambda: team["admin"].DeleteRole(delete))
    assert (gone.code, gone.reason) == (Code.NOT_FOUND, "ROLE_NOT_FOUND")


# --- CheckPermission -----------------------------------------------------------------


def test_check_own_permission(team: Team) -> None:
    viewer = team["viewer"]
    allowed = check(viewer, team.id, "organizations.get")
    assert (allowed.allowed, allowed.role) == (True, "viewer")
    denied = check(viewer, team.id, "workspaces.create")
    assert (denied.allowed, denied.role) == (False, "viewer")
    named = check(viewer, team.id, "members.list", user_id=team.ids["viewer"])
    assert (named.allowed, named.role) == (True, "viewer")


def test_non_platform_caller_cannot_check_another_user(team: Team) -> None:
    result = failure(
        lambda: check(team["owner"], team.id, "organizations.get", user_id=team.ids["viewer"])
    )
    assert result.code == Code.PERMISSION_DENIED


def test_platform_checks_every_permission_of_every_built_in_role(team: Team) -> None:
    platform = team.api.platform()
    for role, user_id in team.ids.items():
        for permission in ALL_PERMISSIONS:
            reply = check(platform, team.id, permission, user_id=user_id)
            expected = (permission in BUILT_IN[role], role)
            assert (reply.allowed, reply.role) == expected, (role, permission)


@pytest.mark.parametrize(
    ("organization", "user"),
    [
        ("random", "member"),
        ("not-a-uuid", "member"),
        ("", "member"),
        ("real", "random"),
        ("real", "not-a-uuid"),
        ("real", "outsider"),
    ],
)
def test_platform_check_of_unknown_organization_or_user_is_not_allowed(
    team: Team, organization: str, user: str
) -> None:
    organization_id = {"random": str(uuid.uuid4()), "real": team.id}.get(organization, organization)
    user_id = {
        "member": team.ids["owner"],
        "random": str(uuid.uuid4()),
        "outsider": team.api.client().user_id,
    }.get(user, user)
    reply = check(team.api.platform(), organization_id, "organizations.get", user_id=user_id)
    assert (reply.allowed, reply.role) == (False, "")


@pytest.mark.parametrize("permission", ["", "organizations.fly", "ORGANIZATIONS.GET"])
@pytest.mark.parametrize("caller", ["owner", "platform"])
def test_check_of_an_unknown_permission_is_invalid(
    team: Team, permission: str, caller: str
) -> None:
    client = team.api.platform() if caller == "platform" else team["owner"]
    result = failure(lambda: check(client, team.id, permission))
    assert result.code == Code.INVALID_ARGUMENT
    assert result.violations == ["permission"]


def test_check_with_a_workspace_of_another_organization_is_not_allowed(team: Team) -> None:
    (own,) = workspace_ids(team.api, team.id)
    (foreign,) = workspace_ids(team.api, team["owner"].create_org().id)
    owner, platform = team["owner"], team.api.platform()
    assert check(owner, team.id, "workspaces.get", workspace_id=own).allowed
    assert not check(owner, team.id, "workspaces.get", workspace_id=foreign).allowed
    assert not check(owner, team.id, "workspaces.get", workspace_id=str(uuid.uuid4())).allowed
    named = check(
        platform, team.id, "workspaces.get", user_id=team.ids["viewer"], workspace_id=foreign
    )
    assert (named.allowed, named.role) == (False, "viewer")


# --- GetCurrentUser ------------------------------------------------------------------


def test_get_current_user_lists_memberships_with_roles(team: Team) -> None:
    user = team.api.client()
    me = user.GetCurrentUser(rpc.GetCurrentUserRequest())
    (personal,) = me.memberships
    assert personal.role == "owner"
    add(team["owner"], team.id, "developer", user_id=me.user.id)
    other = team["admin"].create_org()
    add(team["admin"], other.id, "admin", user_id=me.user.id)
    again = user.GetCurrentUser(rpc.GetCurrentUserRequest())
    assert again.user.id == me.user.id
    assert [(m.organization_id, m.slug, m.role) for m in again.memberships] == [
        (personal.organization_id, personal.slug, "owner"),
        (team.id, team.org.slug, "developer"),
        (other.id, other.slug, "admin"),
    ]


# --- ListAuditEvents -----------------------------------------------------------------


@dataclass
class History:
    """An organization with one of every mutation, and the events they should record:
    (action, actor user id, target type, target id), oldest first."""

    team: Team
    expected: list[tuple[str, str, str, str]]


@pytest.fixture(scope="module")
def history(api: Api) -> History:
    team = Team.new(api)
    owner, org_id = team["owner"], team.id
    ids = team.ids
    expected = [
        ("organization.created", ids["owner"], "organization", org_id),
        *[
            ("member.added", ids["owner"], "member", ids[r])
            for r in ("admin", "developer", "viewer")
        ],
    ]
    owner.UpdateOrganization(
        rpc.UpdateOrganizationRequest(
            organization=pb.Organization(id=org_id, description="audited"),
            update_mask=FieldMask(paths=["description"]),
        )
    )
    expected.append(("organization.updated", ids["owner"], "organization", org_id))
    failure(lambda: add(owner, org_id, "viewer", user_id=ids["viewer"]))  # records nothing
    set_role(team["admin"], org_id, ids["developer"], "viewer")
    expected.append(("member.updated", ids["admin"], "member", ids["developer"]))
    name = f"audited-{tag()}"
    create_role(owner, org_id, name, ["organizations.get"])
    role = pb.Role(organization_id=org_id, name=name, permissions=["members.list"])
    owner.UpdateRole(rpc.UpdateRoleRequest(role=role, update_mask=FieldMask(paths=["permissions"])))
    owner.DeleteRole(rpc.DeleteRoleRequest(organization_id=org_id, name=name))
    expected += [
        (f"role.{verb}", ids["owner"], "role", name) for verb in ("created", "updated", "deleted")
    ]
    remove(team["admin"], org_id, ids["developer"])
    expected.append(("member.removed", ids["admin"], "member", ids["developer"]))
    remove(team["viewer"], org_id, ids["viewer"])
    expected.append(("member.left", ids["viewer"], "member", ids["viewer"]))
    owner.DeleteOrganization(rpc.DeleteOrganizationRequest(organization_id=org_id))
    owner.UndeleteOrganization(rpc.UndeleteOrganizationRequest(organization_id=org_id))
    expected += [
        ("organization.deleted", ids["owner"], "organization", org_id),
        ("organization.undeleted", ids["owner"], "organization", org_id),
    ]
    return History(team, expected)


def test_audit_records_one_event_per_mutation_newest_first(history: History) -> None:
    found, pages = events(history.team["owner"], history.team.id)
    assert len(pages) == 1
    assert pages[0].total_size == len(history.expected)
    assert [(e.action, e.actor_user_id, e.target_type, e.target_id) for e in found] == (
        history.expected[::-1]
    )
    times = [e.create_time.ToDatetime() for e in found]
    assert times == sorted(times, reverse=True)
    assert all(e.organization_id == history.team.id for e in found)
    assert len({e.id for e in found}) == len(found)


@pytest.mark.parametrize(
    "action",
    ["member.added", "member", "organization", "role.deleted", "role", "member.add", "mem", "x"],
)
def test_audit_action_filter_is_exact_or_a_group(history: History, action: str) -> None:
    found, pages = events(history.team["admin"], history.team.id, action=action)
    expected = [e[0] for e in history.expected if e[0] == action or e[0].startswith(f"{action}.")][
        ::-1
    ]
    assert [e.action for e in found] == expected
    assert pages[0].total_size == len(expected)


def test_audit_pages_without_duplicates(history: History) -> None:
    whole, _ = events(history.team["owner"], history.team.id)
    paged, pages = events(history.team["owner"], history.team.id, page_size=4)
    assert [len(page.events) for page in pages[:-1]] == [4] * (len(pages) - 1)
    assert {page.total_size for page in pages} == {len(history.expected)}
    assert [e.id for e in paged] == [e.id for e in whole]


def test_audit_details_hold_no_tokens(history: History) -> None:
    found, _ = events(history.team["owner"], history.team.id)
    tokens = [client.token for client in history.team.clients.values()]
    details = [value for event in found for value in event.details.values()]
    assert details, "events carry details"
    for value in details:
        assert "eyJ" not in value  # the start of every JWT
        assert "bearer" not in value.lower()
        assert not any(token in value for token in tokens)


# --- more edges ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["email", "username"])
def test_add_member_matching_several_users_is_ambiguous(team: Team, field: str) -> None:
    shared = {"email": f"twin-{tag()}@example.com", "username": f"twin-{tag()}"}[field]
    claim = "email" if field == "email" else "preferred_username"
    twins = [team.api.client(**{claim: shared}).user_id for _ in range(2)]
    result = failure(lambda: add(team["owner"], team.id, "viewer", **{field: shared}))
    assert (result.code, result.reason) == (Code.FAILED_PRECONDITION, "AMBIGUOUS_USER")
    assert add(team["owner"], team.id, "viewer", user_id=twins[0]).user.id == twins[0]


@pytest.mark.parametrize(
    ("user", "bad_field"),
    [({}, "user_id"), ({"user_id": "not-a-uuid"}, "user_id")],
    ids=["no-user", "bad-user-id"],
)
def test_add_member_with_an_invalid_user_reference_is_invalid(
    team: Team, user: dict[str, str], bad_field: str
) -> None:
    result = failure(lambda: add(team["owner"], team.id, "viewer", **user))
    assert result.code == Code.INVALID_ARGUMENT
    assert result.violations == [bad_field]


@pytest.mark.parametrize("user_id", ["random", "not-a-uuid", "outsider"])
@pytest.mark.parametrize("operation", ["update", "remove"])
def test_changing_a_non_member_is_member_not_found(
    team: Team, user_id: str, operation: str
) -> None:
    target = {"random": str(uuid.uuid4()), "outsider": team.api.client().user_id}.get(
        user_id, user_id
    )

    def call() -> Any:
        if operation == "update":
            return set_role(team["admin"], team.id, target, "viewer")
        return remove(team["admin"], team.id, target)

    result = failure(call)
    assert (result.code, result.reason) == (Code.NOT_FOUND, "MEMBER_NOT_FOUND")


def test_custom_role_cannot_promote_a_member_beyond_its_permissions(team: Team) -> None:
    updater = create_role(
        team["owner"], team.id, f"upd-{tag()}", [*VIEWER_PERMISSIONS, "members.update"]
    )
    client, _ = team.newcomer(updater.name)
    result = failure(lambda: set_role(client, team.id, team.ids["viewer"], "admin"))
    assert result.code == Code.PERMISSION_DENIED
    assert roles_of(members(team["owner"], team.id))[team.ids["viewer"]] == "viewer"
    assert set_role(client, team.id, team.ids["developer"], "viewer").role == "viewer"


def test_custom_role_cannot_widen_a_role_beyond_its_permissions(team: Team) -> None:
    editor = create_role(
        team["owner"], team.id, f"ed-{tag()}", [*VIEWER_PERMISSIONS, "roles.update"]
    )
    target = create_role(team["owner"], team.id, f"tg-{tag()}", ["organizations.get"])
    client, _ = team.newcomer(editor.name)

    def widen(permissions: list[str]) -> pb.Role:
        role = pb.Role(organization_id=team.id, name=target.name, permissions=permissions)
        request = rpc.UpdateRoleRequest(role=role, update_mask=FieldMask(paths=["permissions"]))
        updated: pb.Role = client.UpdateRole(request).role
        return updated

    result = failure(lambda: widen(["organizations.get", "members.remove"]))
    assert result.code == Code.PERMISSION_DENIED
    assert sorted(widen(["organizations.get", "roles.list"]).permissions) == [
        "organizations.get",
        "roles.list",
    ]


def test_update_role_rejects_permissions_it_cannot_hold(team: Team) -> None:
    name = f"r-{tag()}"
    create_role(team["owner"], team.id, name, ["organizations.get"])
    role = pb.Role(
        organization_id=team.id, name=name, permissions=["members.list", "organizations.delete"]
    )
    request = rpc.UpdateRoleRequest(role=role, update_mask=FieldMask(paths=["permissions"]))
    result = failure(lambda: team["owner"].UpdateRole(request))
    assert result.code == Code.INVALID_ARGUMENT
    assert result.violations == ["role.permissions[1]"]  # a path in the request (AIP-193)
    (stored,) = [r for r in list_roles(team["owner"], team.id) if r.name == name]
    assert list(stored.permissions) == ["organizations.get"]


@pytest.mark.parametrize("path", ["name", "built_in", "organization_id", "nonsense"])
def test_update_role_mask_with_an_immutable_or_unknown_path_is_invalid(
    team: Team, path: str
) -> None:
    name = f"r-{tag()}"
    create_role(team["owner"], team.id, name, ["organizations.get"])
    role = pb.Role(organization_id=team.id, name=name, description="x", built_in=True)
    request = rpc.UpdateRoleRequest(role=role, update_mask=FieldMask(paths=[path]))
    result = failure(lambda: team["owner"].UpdateRole(request))
    assert result.code == Code.INVALID_ARGUMENT
    assert result.violations == ["update_mask"]


def test_update_or_delete_of_an_unknown_role_is_not_found(team: Team) -> None:
    name = f"ghost-{tag()}"
    role = pb.Role(organization_id=team.id, name=name, description="x")
    update = rpc.UpdateRoleRequest(role=role, update_mask=FieldMask(paths=["description"]))
    delete = rpc.DeleteRoleRequest(organization_id=team.id, name=name)
    for call in (
        lambda: team["owner"].UpdateRole(update),
        lambda: team["owner"].DeleteRole(delete),
    ):
        result = failure(call)
        assert (result.code, result.reason) == (Code.NOT_FOUND, "ROLE_NOT_FOUND")


@pytest.mark.parametrize("name", ["", "Caps", "a", "-lead", "has space", "x" * 64])
def test_create_role_with_an_invalid_name_is_invalid(team: Team, name: str) -> None:
    result = failure(lambda: create_role(team["owner"], team.id, name, ["organizations.get"]))
    assert result.code == Code.INVALID_ARGUMENT
    assert result.violations == ["name"]


def test_platform_checks_a_custom_role_holder(team: Team) -> None:
    custom = create_role(team["owner"], team.id, f"c-{tag()}", ["workspaces.create"])
    _, holder = team.newcomer(custom.name)
    platform = team.api.platform()
    allowed = check(platform, team.id, "workspaces.create", user_id=holder)
    assert (allowed.allowed, allowed.role) == (True, custom.name)
    denied = check(platform, team.id, "organizations.get", user_id=holder)
    assert (denied.allowed, denied.role) == (False, custom.name)


def test_platform_checking_itself_acts_as_an_owner(team: Team) -> None:
    reply = check(team.api.platform(), team.id, "organizations.delete")
    assert reply.allowed


def test_memberships_of_deleted_organizations_are_not_listed(team: Team) -> None:
    viewer = team["viewer"]

    def member_of() -> list[str]:
        return [
            m.organization_id
            for m in viewer.GetCurrentUser(rpc.GetCurrentUserRequest()).memberships
        ]

    assert team.id in member_of()
    team["owner"].DeleteOrganization(rpc.DeleteOrganizationRequest(organization_id=team.id))
    assert team.id not in member_of()
    team["owner"].UndeleteOrganization(rpc.UndeleteOrganizationRequest(organization_id=team.id))
    assert team.id in member_of()


def test_audit_page_token_is_bound_to_the_action_filter(history: History) -> None:
    owner, org_id = history.team["owner"], history.team.id
    first = owner.ListAuditEvents(
        rpc.ListAuditEventsRequest(organization_id=org_id, action="member", page_size=1)
    )
    assert first.next_page_token
    result = failure(
        lambda: owner.ListAuditEvents(
            rpc.ListAuditEventsRequest(
                organization_id=org_id, action="role", page_size=1, page_token=first.next_page_token
            )
        )
    )
    assert result.code == Code.INVALID_ARGUMENT


def test_audit_details_describe_the_change(history: History) -> None:
    found, _ = events(history.team["owner"], history.team.id, action="member")
    ids = history.team.ids

    def details(action: str, target: str) -> set[str]:
        (event,) = [e for e in found if (e.action, e.target_id) == (action, target)]
        return set(event.details.values())

    assert "viewer" in details("member.added", ids["viewer"])  # the role granted
    assert {"developer", "viewer"} <= details("member.updated", ids["developer"])  # old, new
