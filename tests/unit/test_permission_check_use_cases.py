"""CheckPermission over in-memory storage: members ask about themselves, platform callers
about anyone and never get NOT_FOUND, and the consistency flag decides whether the read
cache may answer."""

from __future__ import annotations

import uuid

import pytest
from orgs.v1 import organization_service_pb2 as rpc

from orgservice.domain.models import Call
from orgservice.domain.models import WorkspaceFields
from orgservice.service.permission_checks import PermissionCheck
from tests.unit.world import Cast
from tests.unit.world import World
from tests.unit.world import failure


def check(
    world: World,
    call: Call,
    organization_id: str,
    permission: str,
    *,
    user_id: str = "",
    workspace_id: str = "",
) -> PermissionCheck:
    return world.services.permission_checks.check(
        call, organization_id, permission, user_id=user_id, workspace_id=workspace_id
    )


@pytest.mark.parametrize(
    ("who", "permission", "allowed"),
    [
        ("viewer", "organizations.get", True),
        ("viewer", "workspaces.create", False),
        ("developer", "workspaces.create", True),
        ("admin", "organizations.delete", False),
        ("owner", "organizations.delete", True),
    ],
)
def test_members_learn_their_own_permissions(
    world: World, cast: Cast, who: str, permission: str, allowed: bool
) -> None:
    call: Call = getattr(cast, who)
    assert check(world, call, cast.id, permission) == PermissionCheck(allowed, who)
    # Naming oneself is the same as naming no one.
    assert check(world, call, cast.id, permission, user_id=call.caller.user_id.upper()) == (
        PermissionCheck(allowed, who)
    )


def test_organizations_a_caller_is_not_in_do_not_exist(world: World, cast: Cast) -> None:
    for organization_id in (cast.id, str(uuid.uuid4()), "nonsense"):
        error = failure(check, world, cast.outsider, organization_id, "organizations.get")
        assert error.reason == "ORGANIZATION_NOT_FOUND"
    # Even an unknown permission: only members learn what is wrong with their request.
    assert failure(check, world, cast.outsider, cast.id, "no.such").reason == (
        "ORGANIZATION_NOT_FOUND"
    )
    assert failure(check, world, cast.viewer, cast.id, "no.such").reason == "INVALID_ARGUMENT"


def test_only_platform_callers_ask_about_others(world: World, cast: Cast) -> None:
    error = failure(
        check, world, cast.admin, cast.id, "organizations.get", user_id=cast.viewer.caller.user_id
    )
    assert error.reason == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    ("user", "organization", "expected"),
    [
        ("viewer", "cast", PermissionCheck(True, "viewer")),
        ("outsider", "cast", PermissionCheck(False, "")),
        ("unknown", "cast", PermissionCheck(False, "")),
        ("nonsense", "cast", PermissionCheck(False, "")),
        ("viewer", "unknown", PermissionCheck(False, "")),
        ("viewer", "nonsense", PermissionCheck(False, "")),
    ],
)
def test_platform_callers_name_anyone_and_never_get_not_found(
    world: World, cast: Cast, user: str, organization: str, expected: PermissionCheck
) -> None:
    ids = {"unknown": str(uuid.uuid4()), "nonsense": "nonsense"}
    user_id = getattr(cast, user).caller.user_id if hasattr(cast, user) else ids[user]
    organization_id = cast.id if organization == "cast" else ids[organization]
    result = check(world, cast.platform, organization_id, "organizations.get", user_id=user_id)
    assert result == expected


def test_a_platform_caller_about_itself_acts_as_owner(world: World, cast: Cast) -> None:
    assert check(world, cast.platform, cast.id, "organizations.delete") == PermissionCheck(True, "")
    assert check(world, cast.platform, str(uuid.uuid4()), "organizations.get").allowed is False
    error = failure(check, world, cast.platform, cast.id, "no.such")
    assert error.reason == "INVALID_ARGUMENT"


def test_a_workspace_must_be_in_the_organization(world: World, cast: Cast) -> None:
    own = next(ws for (org, ws) in world.db.tables.workspaces if org == cast.id)
    other = world.organization(cast.owner, "Other")
    foreign = world.services.workspaces.create(cast.owner, other.id, WorkspaceFields(name="F"))
    for workspace_id, allowed in (
        (own, True),
        (own.upper(), True),
        (foreign.id, False),
        ("x", False),
    ):
        result = check(world, cast.viewer, cast.id, "workspaces.get", workspace_id=workspace_id)
        assert result == PermissionCheck(allowed, "viewer"), workspace_id
    assert not check(world, cast.viewer, cast.id, "workspaces.create", workspace_id=own).allowed


def test_in_a_deleted_organization_nothing_is_allowed(world: World, cast: Cast) -> None:
    world.services.organizations.delete(cast.owner, cast.id)
    assert check(world, cast.owner, cast.id, "organizations.get") == PermissionCheck(False, "owner")
    assert check(world, cast.platform, cast.id, "organizations.get").allowed is False
    assert failure(check, world, cast.admin, cast.id, "organizations.get").reason == (
        "ORGANIZATION_NOT_FOUND"
    )


@pytest.mark.parametrize(
    ("consistency", "cached"),
    [
        (rpc.CONSISTENCY_UNSPECIFIED, True),
        (rpc.CONSISTENCY_MINIMIZE_LATENCY, True),
        (rpc.CONSISTENCY_FULLY_CONSISTENT, False),
    ],
)
def test_only_a_fully_consistent_check_bypasses_the_read_cache(
    world: World, cast: Cast, consistency: rpc.Consistency.ValueType, cached: bool
) -> None:
    world.db.snapshot_modes.clear()
    request = rpc.CheckPermissionRequest(
        organization_id=cast.id, permission="members.add", consistency=consistency
    )
    response = world.rpcs.CheckPermission(request, cast.admin)
    assert (response.allowed, response.role) == (True, "admin")
    assert world.db.snapshot_modes == [cached]


def test_an_unknown_consistency_is_refused(world: World, cast: Cast) -> None:
    request = rpc.CheckPermissionRequest(
        organization_id=cast.id, permission="members.add", consistency=rpc.Consistency.ValueType(99)
    )
    assert failure(world.rpcs.CheckPermission, request, cast.admin).reason == "INVALID_ARGUMENT"


def test_an_unknown_consistency_is_refused_only_to_callers_who_may_ask(
    world: World, cast: Cast
) -> None:
    """AIP-211: for a non-member the organization does not exist, whatever else is wrong."""
    request = rpc.CheckPermissionRequest(
        organization_id=cast.id, permission="members.add", consistency=rpc.Consistency.ValueType(99)
    )
    refused = failure(world.rpcs.CheckPermission, request, cast.outsider)
    assert refused.reason == "ORGANIZATION_NOT_FOUND"
