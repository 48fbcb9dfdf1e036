"""Invitation use cases over in-memory storage: the state machine

    PENDING -> ACCEPTED | DECLINED | REVOKED | EXPIRED (by time);  EXPIRED -> PENDING (resend)

single use, tokens stored only as hashes, one pending invitation per email."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta

import pytest

from orgservice.domain.models import Invitation
from orgservice.domain.models import InvitationState
from orgservice.domain.models import PageRequest
from orgservice.service.invitations import DEFAULT_TTL
from orgservice.service.invitations import MAX_TTL
from orgservice.service.invitations import InvitationChanges
from tests.unit.world import Cast
from tests.unit.world import World
from tests.unit.world import failure

EMAIL = "invitee@example.com"


def invite(
    world: World, cast: Cast, email: str = EMAIL, ttl: timedelta | None = None
) -> tuple[Invitation, str]:
    return world.services.invitations.create(
        cast.admin, cast.id, email=email, role="developer", ttl=lambda: ttl
    )


def state(world: World, invitation: Invitation) -> InvitationState:
    """The invitation's state now, as its administrators see it."""
    return world.db.tables.invitations[invitation.id].at(world.clock.now).state


def role_of(world: World, cast: Cast, user_id: str) -> str | None:
    member = world.db.tables.memberships.get((cast.id, user_id))
    return member.role if member else None


# --- create ----------------------------------------------------------------------------


def test_an_invitation_is_pending_and_its_token_is_stored_only_as_a_hash(
    world: World, cast: Cast
) -> None:
    invitation, token = invite(world, cast, email="  Invitee@Example.COM ")
    assert (invitation.email, invitation.role, invitation.state) == (
        EMAIL,
        "developer",
        InvitationState.PENDING,
    )
    assert invitation.expire_time == world.clock.now + DEFAULT_TTL
    assert invitation.inviter_user_id == cast.admin.caller.user_id
    row = world.db.tables.invitations[invitation.id]
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(world.db.tables)
    assert world.audit_actions(cast.id)[-1] == "invitation.created"


@pytest.mark.parametrize(
    ("ttl", "allowed"),
    [
        (timedelta(0), False),
        (timedelta(seconds=-1), False),
        (timedelta(microseconds=1), True),
        (MAX_TTL, True),
        (MAX_TTL + timedelta(microseconds=1), False),
    ],
)
def test_the_lifetime_is_positive_and_at_most_30_days(
    world: World, cast: Cast, ttl: timedelta, allowed: bool
) -> None:
    if allowed:
        assert invite(world, cast, ttl=ttl)[0].expire_time == world.clock.now + ttl
    else:
        assert failure(invite, world, cast, ttl=ttl).reason == "INVALID_ARGUMENT"


def test_an_email_has_one_pending_invitation(world: World, cast: Cast) -> None:
    invite(world, cast)
    assert failure(invite, world, cast, email=EMAIL.upper()).reason == "INVITATION_PENDING"


def test_a_member_is_not_invited(world: World, cast: Cast) -> None:
    member = world.db.tables.users[cast.viewer.caller.user_id].user
    assert failure(invite, world, cast, email=member.email).reason == "ALREADY_MEMBER"


def test_a_repeated_request_id_returns_the_invitation_without_its_token(
    world: World, cast: Cast
) -> None:
    request_id = str(uuid.uuid4())

    def create(email: str) -> tuple[Invitation, str]:
        return world.services.invitations.create(
            cast.admin, cast.id, email=email, role="viewer", ttl=lambda: None, request_id=request_id
        )

    first, token = create(EMAIL)
    again, no_token = create(EMAIL)
    assert (again, no_token) == (first, "")
    assert token
    assert len(world.db.tables.invitations) == 1
    assert failure(create, "other@example.com").reason == "REQUEST_ID_REUSED"


# --- accept, decline, revoke: single use -----------------------------------------------


def test_anyone_holding_the_token_accepts_once(world: World, cast: Cast) -> None:
    invitation, token = invite(world, cast)
    holder = world.call()
    member = world.services.invitations.accept(holder, token=token)
    assert (member.user.id, member.role) == (holder.caller.user_id, "developer")
    assert state(world, invitation) is InvitationState.ACCEPTED
    assert world.db.tables.organizations[cast.id].organization.member_count == 5
    assert world.audit_actions(cast.id)[-1] == "invitation.accepted"
    again = failure(world.services.invitations.accept, world.call(), token=token)
    assert again.reason == "INVITATION_NOT_PENDING"


def test_by_id_only_the_verified_invitee_accepts(world: World, cast: Cast) -> None:
    invitation, _ = invite(world, cast)
    accept = world.services.invitations.accept
    for stranger in (world.call(), world.call("invitee", verified=False)):
        assert failure(accept, stranger, invitation_id=invitation.id).reason == (
            "INVITATION_NOT_FOUND"
        )
    invitee = world.call(email="INVITEE@example.com")
    assert accept(invitee, invitation_id=invitation.id.upper()).user.id == invitee.caller.user_id


def test_unknown_tokens_and_ids_find_nothing(world: World, cast: Cast) -> None:
    invite(world, cast)
    invitee = world.call("invitee")
    accept = world.services.invitations.accept
    assert failure(accept, invitee, token="not-a-token").reason == "INVITATION_NOT_FOUND"
    assert failure(accept, invitee, invitation_id=str(uuid.uuid4())).reason == (
        "INVITATION_NOT_FOUND"
    )
    assert failure(accept, invitee, invitation_id="nonsense").reason == "INVITATION_NOT_FOUND"
    assert failure(accept, invitee).reason == "INVALID_ARGUMENT"


def test_a_declined_invitation_cannot_be_used(world: World, cast: Cast) -> None:
    invitation, token = invite(world, cast)
    invitee = world.call("invitee")
    declined = world.services.invitations.decline(invitee, invitation_id=invitation.id)
    assert declined.state is InvitationState.DECLINED
    for use in (world.services.invitations.accept, world.services.invitations.decline):
        assert failure(use, invitee, token=token).reason == "INVITATION_NOT_PENDING"
    assert role_of(world, cast, invitee.caller.user_id) is None


def test_a_revoked_invitation_cannot_be_used(world: World, cast: Cast) -> None:
    invitation, token = invite(world, cast)
    revoked = world.services.invitations.revoke(cast.admin, invitation.id)
    assert revoked.state is InvitationState.REVOKED
    assert failure(world.services.invitations.accept, world.call(), token=token).reason == (
        "INVITATION_NOT_PENDING"
    )
    assert failure(world.services.invitations.revoke, cast.admin, invitation.id).reason == (
        "INVITATION_NOT_PENDING"
    )
    resent = failure(world.services.invitations.resend, cast.admin, invitation.id, lambda: None)
    assert resent.reason == "INVITATION_NOT_PENDING"


def test_revoking_takes_the_permission_and_outsiders_find_nothing(world: World, cast: Cast) -> None:
    invitation, _ = invite(world, cast)
    revoke = world.services.invitations.revoke
    assert failure(revoke, cast.viewer, invitation.id).reason == "PERMISSION_DENIED"
    assert failure(revoke, cast.outsider, invitation.id).reason == "INVITATION_NOT_FOUND"
    assert state(world, invitation) is InvitationState.PENDING


def test_accepting_as_a_member_or_into_a_deleted_organization_fails(
    world: World, cast: Cast
) -> None:
    _, token = invite(world, cast)
    assert failure(world.services.invitations.accept, cast.viewer, token=token).reason == (
        "ALREADY_MEMBER"
    )
    world.services.organizations.delete(cast.owner, cast.id)
    assert failure(world.services.invitations.accept, world.call(), token=token).reason == (
        "INVITATION_NOT_FOUND"
    )


# --- expiry and resend -----------------------------------------------------------------


def expire(world: World, invitation: Invitation) -> None:
    world.clock.now = invitation.expire_time  # expired from that instant on


def test_an_invitation_expires_with_time(world: World, cast: Cast) -> None:
    invitation, token = invite(world, cast)
    world.clock.now = invitation.expire_time - timedelta(microseconds=1)
    assert state(world, invitation) is InvitationState.PENDING
    expire(world, invitation)
    assert world.services.invitations.get(cast.admin, invitation.id).state is (
        InvitationState.EXPIRED
    )
    page = world.services.invitations.list(
        cast.admin, cast.id, lambda: PageRequest(limit=10), state=lambda: InvitationState.EXPIRED
    )
    assert [i.id for i in page.items] == [invitation.id]
    assert failure(world.services.invitations.accept, world.call(), token=token).reason == (
        "INVITATION_EXPIRED"
    )
    assert failure(world.services.invitations.revoke, cast.admin, invitation.id).reason == (
        "INVITATION_EXPIRED"
    )
    changed = failure(
        world.services.invitations.update,
        cast.admin,
        invitation.id,
        lambda: InvitationChanges(role="viewer"),
    )
    assert changed.reason == "INVITATION_EXPIRED"


def test_resend_revives_an_expired_invitation_with_a_new_token(world: World, cast: Cast) -> None:
    invitation, old_token = invite(world, cast)
    expire(world, invitation)
    revived, token = world.services.invitations.resend(
        cast.admin, invitation.id, lambda: timedelta(days=1)
    )
    assert (revived.id, revived.state) == (invitation.id, InvitationState.PENDING)
    assert revived.expire_time == world.clock.now + timedelta(days=1)
    assert token != old_token
    accept = world.services.invitations.accept
    assert failure(accept, world.call(), token=old_token).reason == "INVITATION_NOT_FOUND"
    assert accept(world.call(), token=token).role == "developer"
    assert world.audit_actions(cast.id)[-2:] == ["invitation.resent", "invitation.accepted"]


def test_resending_a_pending_invitation_replaces_its_token(world: World, cast: Cast) -> None:
    invitation, old_token = invite(world, cast)
    _, token = world.services.invitations.resend(cast.admin, invitation.id, lambda: None)
    accept = world.services.invitations.accept
    assert failure(accept, world.call(), token=old_token).reason == "INVITATION_NOT_FOUND"
    accept(world.call(), token=token)


def test_a_new_invitation_takes_the_slot_of_an_expired_one(world: World, cast: Cast) -> None:
    old, _ = invite(world, cast)
    expire(world, old)
    new, _ = invite(world, cast)
    assert new.id != old.id
    # The old one is expired for good: it cannot come back while the new one is pending.
    assert world.db.tables.invitations[old.id].stored.state is InvitationState.EXPIRED
    resent = failure(world.services.invitations.resend, cast.admin, old.id, lambda: None)
    assert resent.reason == "INVITATION_PENDING"


def test_an_invitation_whose_role_was_deleted_cannot_be_accepted(world: World, cast: Cast) -> None:
    world.services.roles.create(cast.owner, cast.id, name="temp", description="", permissions=[])
    invitation, _ = world.services.invitations.create(
        cast.admin, cast.id, email=EMAIL, role="temp", ttl=lambda: None
    )
    in_use = failure(world.services.roles.delete, cast.admin, cast.id, "temp")
    assert in_use.reason == "ROLE_IN_USE"
    expire(world, invitation)
    world.services.roles.delete(cast.admin, cast.id, "temp")
    _, token = world.services.invitations.resend(cast.admin, invitation.id, lambda: None)
    error = failure(world.services.invitations.accept, world.call(), token=token)
    assert error.reason == "INVITED_ROLE_DELETED"


# --- reading and updating --------------------------------------------------------------


def test_the_invitee_and_administrators_see_an_invitation(world: World, cast: Cast) -> None:
    invitation, _ = invite(world, cast)
    get = world.services.invitations.get
    assert get(world.call("invitee"), invitation.id) == invitation
    assert get(cast.admin, invitation.id) == invitation
    assert failure(get, cast.viewer, invitation.id).reason == "PERMISSION_DENIED"
    assert failure(get, cast.outsider, invitation.id).reason == "INVITATION_NOT_FOUND"
    assert failure(get, cast.admin, "").reason == "INVALID_ARGUMENT"


def test_my_invitations_are_the_pending_ones_for_my_verified_email(
    world: World, cast: Cast
) -> None:
    other = world.organization(cast.owner, "Other")
    mine, _ = invite(world, cast, ttl=timedelta(days=1))
    world.services.invitations.create(
        cast.owner, other.id, email=EMAIL, role="viewer", ttl=lambda: timedelta(days=2)
    )
    invite(world, cast, email="someone@example.com")

    def listed(verified: bool) -> int:
        call = world.call(email=EMAIL.upper(), verified=verified)
        return len(world.services.invitations.list_mine(call, lambda: PageRequest(10)).items)

    assert listed(verified=True) == 2
    assert listed(verified=False) == 0
    expire(world, mine)
    assert listed(verified=True) == 1


def test_update_changes_role_and_expiry_within_bounds(world: World, cast: Cast) -> None:
    invitation, _ = invite(world, cast)
    update = world.services.invitations.update
    later = world.clock.now + timedelta(days=10)
    updated = update(
        cast.admin, invitation.id, lambda: InvitationChanges(role="viewer", expire_time=later)
    )
    assert (updated.role, updated.expire_time) == ("viewer", later)
    for bad in (world.clock.now, world.clock.now + MAX_TTL + timedelta(seconds=1)):
        error = failure(update, cast.admin, invitation.id, _expiring(bad))
        assert error.reason == "INVALID_ARGUMENT"
    unknown = failure(update, cast.admin, invitation.id, lambda: InvitationChanges(role="boss"))
    assert unknown.reason == "UNKNOWN_ROLE"
    assert world.db.tables.invitations[invitation.id].stored.expire_time == later


def _expiring(when: datetime) -> Callable[[], InvitationChanges]:
    return lambda: InvitationChanges(expire_time=when)
