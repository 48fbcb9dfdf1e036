"""Membership use cases over in-memory storage: the owner rules, the last owner, no
escalation through custom roles, and the member count."""

from __future__ import annotations

import pytest

from orgservice.domain.models import Call
from orgservice.domain.models import PageRequest
from orgservice.domain.models import UserRef
from orgservice.domain.permissions import MEMBERS_ADD
from orgservice.domain.permissions import MEMBERS_LIST
from orgservice.domain.permissions import MEMBERS_UPDATE
from orgservice.domain.permissions import ORGANIZATIONS_GET
from orgservice.domain.permissions import ROLES_CREATE
from orgservice.domain.permissions import ROLES_LIST
from orgservice.domain.permissions import ROLES_UPDATE
from orgservice.domain.permissions import WORKSPACES_GET
from orgservice.domain.permissions import WORKSPACES_LIST
from orgservice.service.invitations import InvitationChanges
from orgservice.service.roles import RoleChanges
from tests.unit.world import Cast
from tests.unit.world import World
from tests.unit.world import failure
from tests.unit.world import pages

VIEWER_PERMISSIONS = [ORGANIZATIONS_GET, MEMBERS_LIST, WORKSPACES_LIST, WORKSPACES_GET, ROLES_LIST]


def by_id(call: Call) -> UserRef:
    return UserRef(user_id=call.caller.user_id)


def role_of(world: World, cast: Cast, call: Call) -> str | None:
    member = world.db.tables.memberships.get((cast.id, call.caller.user_id))
    return member.role if member else None


def member_count(world: World, cast: Cast) -> int:
    return world.db.tables.organizations[cast.id].organization.member_count


# --- only owners grant owner, change an owner, remove an owner -------------------------


def test_an_admin_cannot_grant_the_owner_role(world: World, cast: Cast) -> None:
    newcomer = world.call()
    error = failure(
        lambda: world.services.members.add(cast.admin, cast.id, by_id(newcomer), "owner")
    )
    assert error.reason == "OWNER_REQUIRED"
    promoted = failure(
        lambda: world.services.members.update(
            cast.admin, cast.id, cast.viewer.caller.user_id, "owner"
        )
    )
    assert promoted.reason == "OWNER_REQUIRED"
    assert role_of(world, cast, newcomer) is None
    assert role_of(world, cast, cast.viewer) == "viewer"


def test_an_owner_grants_the_owner_role(world: World, cast: Cast) -> None:
    member = world.services.members.update(cast.owner, cast.id, cast.admin.caller.user_id, "owner")
    assert member.role == "owner"
    assert role_of(world, cast, cast.admin) == "owner"
    assert world.audit_actions(cast.id)[-1] == "member.updated"


def test_a_platform_caller_acts_as_an_owner(world: World, cast: Cast) -> None:
    newcomer = world.call()
    member = world.services.members.add(cast.platform, cast.id, by_id(newcomer), "owner")
    assert member.role == "owner"


def test_an_admin_cannot_change_or_remove_an_owner(world: World, cast: Cast) -> None:
    second_owner = world.member(cast.id, "owner", added_by=cast.owner)
    owner_id = second_owner.caller.user_id
    demoted = failure(
        lambda: world.services.members.update(cast.admin, cast.id, owner_id, "viewer")
    )
    assert demoted.reason == "OWNER_REQUIRED"
    removed = failure(lambda: world.services.members.remove(cast.admin, cast.id, owner_id))
    assert removed.reason == "OWNER_REQUIRED"
    assert role_of(world, cast, second_owner) == "owner"


def test_an_owner_demotes_and_removes_another_owner(world: World, cast: Cast) -> None:
    second_owner = world.member(cast.id, "owner", added_by=cast.owner)
    world.services.members.update(cast.owner, cast.id, second_owner.caller.user_id, "admin")
    assert role_of(world, cast, second_owner) == "admin"
    world.services.members.remove(cast.owner, cast.id, second_owner.caller.user_id)
    assert role_of(world, cast, second_owner) is None
    assert world.audit_actions(cast.id)[-1] == "member.removed"


# --- the last owner --------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "platform"])
def test_the_last_owner_cannot_be_demoted(world: World, cast: Cast, who: str) -> None:
    call: Call = getattr(cast, who)
    error = failure(
        lambda: world.services.members.update(call, cast.id, cast.owner.caller.user_id, "admin")
    )
    assert error.reason == "LAST_OWNER"
    assert role_of(world, cast, cast.owner) == "owner"


@pytest.mark.parametrize("who", ["owner", "platform"])
def test_the_last_owner_cannot_leave_or_be_removed(world: World, cast: Cast, who: str) -> None:
    call: Call = getattr(cast, who)
    error = failure(lambda: world.services.members.remove(call, cast.id, cast.owner.caller.user_id))
    assert error.reason == "LAST_OWNER"
    assert role_of(world, cast, cast.owner) == "owner"


def test_an_owner_may_leave_when_another_owner_stays(world: World, cast: Cast) -> None:
    world.member(cast.id, "owner", added_by=cast.owner)
    world.services.members.remove(cast.owner, cast.id, cast.owner.caller.user_id)
    assert role_of(world, cast, cast.owner) is None
    assert world.audit_actions(cast.id)[-1] == "member.left"


def test_any_member_may_leave(world: World, cast: Cast) -> None:
    # The viewer holds no members.remove; leaving needs none.
    world.services.members.remove(cast.viewer, cast.id, cast.viewer.caller.user_id.upper())
    assert role_of(world, cast, cast.viewer) is None


def test_removing_someone_else_takes_members_remove(world: World, cast: Cast) -> None:
    error = failure(
        lambda: world.services.members.remove(cast.developer, cast.id, cast.viewer.caller.user_id)
    )
    assert error.reason == "PERMISSION_DENIED"
    assert error.metadata == {"permission": "members.remove"}


# --- no escalation through custom roles ------------------------------------------------


def recruiter(world: World, cast: Cast, *extra: str) -> Call:
    """A member whose custom role adds viewers (and `extra`), nothing more."""
    world.services.roles.create(
        cast.owner,
        cast.id,
        name="recruiter",
        description="",
        permissions=[*VIEWER_PERMISSIONS, MEMBERS_ADD, MEMBERS_UPDATE, *extra],
    )
    return world.member(cast.id, "recruiter", added_by=cast.owner)


def test_a_custom_role_grants_only_roles_within_its_permissions(world: World, cast: Cast) -> None:
    hiring = recruiter(world, cast)
    viewer = world.call()
    world.services.members.add(hiring, cast.id, by_id(viewer), "viewer")
    developer = world.call()
    error = failure(
        lambda: world.services.members.add(hiring, cast.id, by_id(developer), "developer")
    )
    assert error.reason == "PERMISSION_DENIED"
    assert error.metadata == {"permission": "workspaces.create"}
    promoted = failure(
        lambda: world.services.members.update(hiring, cast.id, viewer.caller.user_id, "admin")
    )
    assert promoted.reason == "PERMISSION_DENIED"
    assert role_of(world, cast, viewer) == "viewer"
    assert role_of(world, cast, developer) is None


def test_a_custom_role_may_regrant_its_own_role(world: World, cast: Cast) -> None:
    hiring = recruiter(world, cast)
    newcomer = world.call()
    assert world.services.members.add(hiring, cast.id, by_id(newcomer), "recruiter").role == (
        "recruiter"
    )


def test_a_custom_role_cannot_create_or_widen_a_role_beyond_itself(
    world: World, cast: Cast
) -> None:
    designer = recruiter(world, cast, ROLES_CREATE, ROLES_UPDATE)
    created = failure(
        lambda: world.services.roles.create(
            designer, cast.id, name="deleter", description="", permissions=["workspaces.delete"]
        )
    )
    assert created.reason == "PERMISSION_DENIED"
    assert created.metadata == {"permission": "workspaces.delete"}
    world.services.roles.create(
        cast.owner, cast.id, name="cleaner", description="", permissions=["workspaces.delete"]
    )
    widened = failure(
        lambda: world.services.roles.update(
            designer,
            cast.id,
            "recruiter",
            lambda: RoleChanges(permissions=[*VIEWER_PERMISSIONS, "members.remove"]),
        )
    )
    assert widened.reason == "PERMISSION_DENIED"
    # Taking a permission away from a role is granting too: the caller must hold it.
    narrowed = failure(
        lambda: world.services.roles.update(
            designer, cast.id, "cleaner", lambda: RoleChanges(permissions=[])
        )
    )
    assert narrowed.reason == "PERMISSION_DENIED"
    assert world.db.tables.roles[cast.id, "cleaner"].role.permissions == ("workspaces.delete",)


def test_a_custom_role_cannot_invite_beyond_itself(world: World, cast: Cast) -> None:
    inviter = recruiter(world, cast, "invitations.create", "invitations.update")
    invitation, _ = world.services.invitations.create(
        inviter, cast.id, email="new@example.com", role="viewer", ttl=lambda: None
    )
    created = failure(
        lambda: world.services.invitations.create(
            inviter, cast.id, email="boss@example.com", role="admin", ttl=lambda: None
        )
    )
    assert created.reason == "PERMISSION_DENIED"
    updated = failure(
        lambda: world.services.invitations.update(
            inviter, invitation.id, lambda: InvitationChanges(role="owner")
        )
    )
    assert updated.reason == "OWNER_REQUIRED"


# --- adding, updating, listing ---------------------------------------------------------


def test_adding_and_removing_keep_the_member_count(world: World, cast: Cast) -> None:
    assert member_count(world, cast) == 4
    extra = world.member(cast.id, "viewer", added_by=cast.admin)
    assert member_count(world, cast) == 5
    world.services.members.remove(cast.admin, cast.id, extra.caller.user_id)
    world.services.members.remove(cast.viewer, cast.id, cast.viewer.caller.user_id)
    assert member_count(world, cast) == 3
    page = world.services.members.list(cast.admin, cast.id, lambda: PageRequest(limit=10))
    assert page.total_size == 3
    assert len(page.items) == 3


def test_users_are_found_by_id_username_or_email(world: World, cast: Cast) -> None:
    by_name = world.call("dana")
    by_mail = world.call("erin", email="Erin@Example.COM")
    add = world.services.members.add
    assert add(cast.admin, cast.id, UserRef(username="dana"), "viewer").user.id == (
        by_name.caller.user_id
    )
    assert add(cast.admin, cast.id, UserRef(email="erin@example.com"), "viewer").user.id == (
        by_mail.caller.user_id
    )


def test_adding_refuses_unknown_ambiguous_and_existing_members(world: World, cast: Cast) -> None:
    add = world.services.members.add
    unknown = failure(lambda: add(cast.admin, cast.id, UserRef(username="nobody"), "viewer"))
    assert unknown.reason == "USER_NOT_FOUND"
    world.call(email="twin@example.com")
    world.call(email="TWIN@example.com")
    ambiguous = failure(
        lambda: add(cast.admin, cast.id, UserRef(email="twin@example.com"), "viewer")
    )
    assert ambiguous.reason == "AMBIGUOUS_USER"
    again = failure(lambda: add(cast.admin, cast.id, by_id(cast.viewer), "viewer"))
    assert again.reason == "ALREADY_MEMBER"
    no_role = failure(lambda: add(cast.admin, cast.id, by_id(world.call()), "superuser"))
    assert no_role.reason == "UNKNOWN_ROLE"
    nobody = failure(lambda: add(cast.admin, cast.id, UserRef(), "viewer"))
    assert nobody.reason == "INVALID_ARGUMENT"
    assert member_count(world, cast) == 4


def test_updating_to_the_current_role_changes_nothing(world: World, cast: Cast) -> None:
    commits = world.db.commits
    member = world.services.members.update(
        cast.admin, cast.id, cast.viewer.caller.user_id, "viewer"
    )
    assert member.role == "viewer"
    assert world.db.commits == commits


@pytest.mark.parametrize("user", ["outsider", "not-a-uuid"])
def test_updating_someone_who_is_no_member(world: World, cast: Cast, user: str) -> None:
    user_id = cast.outsider.caller.user_id if user == "outsider" else user
    error = failure(lambda: world.services.members.update(cast.admin, cast.id, user_id, "viewer"))
    assert error.reason == "MEMBER_NOT_FOUND"


def test_members_are_listed_in_pages_and_by_role(world: World, cast: Cast) -> None:
    for _ in range(3):
        world.member(cast.id, "viewer", added_by=cast.admin)
    listed = pages(lambda page: world.services.members.list(cast.viewer, cast.id, page), limit=2)
    assert [p.total_size for p in listed] == [7] * 4
    seen = [m.user.id for p in listed for m in p.items]
    assert len(seen) == len(set(seen)) == 7
    viewers = world.services.members.list(
        cast.viewer, cast.id, lambda: PageRequest(limit=10), role="viewer"
    )
    assert viewers.total_size == len(viewers.items) == 4
    assert {m.role for m in viewers.items} == {"viewer"}
