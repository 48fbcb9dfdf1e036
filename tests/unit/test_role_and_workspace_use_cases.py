"""Role and workspace use cases over in-memory storage: built-in roles are fixed, custom
roles hold a subset of permissions, workspace slugs are unique per organization and the
workspace count follows every change."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from orgservice.domain.models import PageRequest
from orgservice.domain.models import WorkspaceFields
from orgservice.domain.permissions import OWNER_ONLY_PERMISSIONS
from orgservice.service.roles import RoleChanges
from tests.unit.world import Cast
from tests.unit.world import World
from tests.unit.world import failure


def workspace_count(world: World, cast: Cast) -> int:
    return world.db.tables.organizations[cast.id].organization.workspace_count


# --- roles -----------------------------------------------------------------------------


def test_a_custom_role_is_listed_after_the_built_ins(world: World, cast: Cast) -> None:
    world.clock.advance(timedelta(seconds=1))
    role = world.services.roles.create(
        cast.admin,
        cast.id,
        name="auditor",
        description="Reads the log.",
        permissions=["audit.list", "organizations.get", "audit.list"],
    )
    assert (role.name, role.built_in) == ("auditor", False)
    # Stored once each, in the permission table's order.
    assert role.permissions == ("organizations.get", "audit.list")
    names = [
        r.name
        for r in world.services.roles.list(cast.viewer, cast.id, lambda: PageRequest(10)).items
    ]
    assert names == ["owner", "admin", "developer", "viewer", "auditor"]
    assert (
        failure(
            world.services.roles.create,
            cast.admin,
            cast.id,
            name="auditor",
            description="",
            permissions=[],
        ).reason
        == "ROLE_EXISTS"
    )


@pytest.mark.parametrize("permission", [*sorted(OWNER_ONLY_PERMISSIONS), "no.such", ""])
def test_custom_roles_hold_only_custom_role_permissions(
    world: World, cast: Cast, permission: str
) -> None:
    error = failure(
        world.services.roles.create,
        cast.owner,
        cast.id,
        name="mighty",
        description="",
        permissions=["members.list", permission],
    )
    assert error.reason == "INVALID_ARGUMENT"
    assert [v.field for v in getattr(error, "violations", [])] == ["permissions[1]"]


@pytest.mark.parametrize("name", ["owner", "viewer"])
def test_built_in_roles_cannot_be_changed_or_deleted(world: World, cast: Cast, name: str) -> None:
    updated = failure(
        world.services.roles.update, cast.owner, cast.id, name, lambda: RoleChanges(description="x")
    )
    assert updated.reason == "BUILT_IN_ROLE"
    assert failure(world.services.roles.delete, cast.owner, cast.id, name).reason == "BUILT_IN_ROLE"


def test_a_role_held_by_a_member_cannot_be_deleted(world: World, cast: Cast) -> None:
    world.services.roles.create(cast.owner, cast.id, name="temp", description="", permissions=[])
    holder = world.member(cast.id, "temp", added_by=cast.owner)
    assert failure(world.services.roles.delete, cast.admin, cast.id, "temp").reason == "ROLE_IN_USE"
    world.services.members.remove(holder, cast.id, holder.caller.user_id)
    world.services.roles.delete(cast.admin, cast.id, "temp")
    assert (cast.id, "temp") not in world.db.tables.roles
    assert failure(world.services.roles.delete, cast.admin, cast.id, "temp").reason == (
        "ROLE_NOT_FOUND"
    )


def test_updating_a_role_changes_what_its_members_may_do(world: World, cast: Cast) -> None:
    world.services.roles.create(
        cast.owner, cast.id, name="reader", description="", permissions=["organizations.get"]
    )
    reader = world.member(cast.id, "reader", added_by=cast.owner)
    assert failure(world.services.members.list, reader, cast.id, lambda: PageRequest(1)).reason == (
        "PERMISSION_DENIED"
    )
    world.services.roles.update(
        cast.admin,
        cast.id,
        "reader",
        lambda: RoleChanges(permissions=["organizations.get", "members.list"]),
    )
    assert world.services.members.list(reader, cast.id, lambda: PageRequest(10)).total_size == 5


# --- workspaces ------------------------------------------------------------------------


def test_workspaces_count_and_slugs_are_unique_per_organization(world: World, cast: Cast) -> None:
    create = world.services.workspaces.create
    first = create(cast.developer, cast.id, WorkspaceFields(name="Data Science"))
    second = create(cast.developer, cast.id, WorkspaceFields(name="data science!"))
    assert first.slug == "data-science"
    assert second.slug.startswith("data-science-")
    assert workspace_count(world, cast) == 3
    taken = failure(create, cast.developer, cast.id, WorkspaceFields(name="X", slug="default"))
    assert taken.reason == "SLUG_TAKEN"
    # Another organization has slugs of its own.
    other = world.organization(cast.owner, "Other")
    assert create(cast.owner, other.id, WorkspaceFields(name="X", slug="data-science")).slug == (
        "data-science"
    )
    world.services.workspaces.delete(cast.admin, cast.id, first.id)
    assert workspace_count(world, cast) == 2
    listed = world.services.workspaces.list(cast.viewer, cast.id, lambda: PageRequest(10))
    assert listed.total_size == len(listed.items) == 2


def test_workspace_update_checks_slug_and_etag(world: World, cast: Cast) -> None:
    workspace = world.services.workspaces.create(cast.developer, cast.id, WorkspaceFields(name="W"))
    update = world.services.workspaces.update
    taken = failure(
        update, cast.developer, cast.id, workspace.id, lambda: WorkspaceFields(slug="default")
    )
    assert taken.reason == "SLUG_TAKEN"
    cleared = failure(
        update, cast.developer, cast.id, workspace.id, lambda: WorkspaceFields(slug="")
    )
    assert cleared.reason == "INVALID_ARGUMENT"
    renamed = update(
        cast.developer,
        cast.id,
        workspace.id,
        lambda: WorkspaceFields(name="New"),
        etag=workspace.etag,
    )
    assert (renamed.name, renamed.slug) == ("New", workspace.slug)
    assert renamed.etag != workspace.etag
    stale = failure(
        update,
        cast.developer,
        cast.id,
        workspace.id,
        lambda: WorkspaceFields(name="Z"),
        etag=workspace.etag,
    )
    assert stale.reason == "ETAG_MISMATCH"
    deleted = failure(
        world.services.workspaces.delete, cast.admin, cast.id, workspace.id, etag=workspace.etag
    )
    assert deleted.reason == "ETAG_MISMATCH"
    assert failure(
        world.services.workspaces.delete, cast.developer, cast.id, workspace.id
    ).reason == ("PERMISSION_DENIED")


@pytest.mark.parametrize("workspace_id", ["", "nonsense", str(uuid.uuid4())])
def test_unknown_workspaces(world: World, cast: Cast, workspace_id: str) -> None:
    expected = "INVALID_ARGUMENT" if not workspace_id else "WORKSPACE_NOT_FOUND"
    assert failure(world.services.workspaces.get, cast.viewer, cast.id, workspace_id).reason == (
        expected
    )


def test_a_workspace_of_another_organization_is_not_found(world: World, cast: Cast) -> None:
    other = world.organization(cast.owner, "Other")
    foreign = world.services.workspaces.create(cast.owner, other.id, WorkspaceFields(name="F"))
    error = failure(world.services.workspaces.get, cast.owner, cast.id, foreign.id)
    assert error.reason == "WORKSPACE_NOT_FOUND"


def test_a_repeated_workspace_request_id_returns_the_first(world: World, cast: Cast) -> None:
    request_id = str(uuid.uuid4())
    create = world.services.workspaces.create
    first = create(cast.developer, cast.id, WorkspaceFields(name="W"), request_id=request_id)
    again = create(cast.developer, cast.id, WorkspaceFields(name="W"), request_id=request_id)
    assert again == first
    assert workspace_count(world, cast) == 2
    reused = failure(
        create, cast.developer, cast.id, WorkspaceFields(name="V"), request_id=request_id
    )
    assert reused.reason == "REQUEST_ID_REUSED"
