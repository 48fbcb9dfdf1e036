"""Invitations end to end against a real server on SQLite and PostgreSQL (the `api`
fixture): the state machine, who may see and accept what, validation, token secrecy,
idempotency and the audit trail.

The server is shared by the session: every test makes fresh users, emails and orgs.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb
from sqlalchemy import text

from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure
from tests.support.invitations import Org
from tests.support.invitations import accept
from tests.support.invitations import invitee
from tests.support.invitations import new_email
from tests.support.invitations import new_org

Code = grpc.StatusCode
PENDING = pb.INVITATION_STATE_PENDING
ACCEPTED = pb.INVITATION_STATE_ACCEPTED
DECLINED = pb.INVITATION_STATE_DECLINED
REVOKED = pb.INVITATION_STATE_REVOKED
EXPIRED = pb.INVITATION_STATE_EXPIRED


# --- helpers -------------------------------------------------------------------------


@pytest.fixture
def org(api: Api) -> Org:
    return new_org(api)


def decline(client: Client, **by: str) -> pb.Invitation:
    return client.DeclineInvitation(rpc.DeclineInvitationRequest(**by)).invitation


def revoke(client: Client, invitation_id: str) -> pb.Invitation:
    return client.RevokeInvitation(
        rpc.RevokeInvitationRequest(invitation_id=invitation_id)
    ).invitation


def resend(client: Client, invitation_id: str) -> rpc.ResendInvitationResponse:
    return client.ResendInvitation(rpc.ResendInvitationRequest(invitation_id=invitation_id))


def my_invitations(client: Client) -> list[pb.Invitation]:
    return list(client.ListMyInvitations(rpc.ListMyInvitationsRequest()).invitations)


def update(client: Client, invitation_id: str, paths: list[str], **fields: Any) -> pb.Invitation:
    request = rpc.UpdateInvitationRequest(
        invitation=pb.Invitation(id=invitation_id, **fields), update_mask=FieldMask(paths=paths)
    )
    return client.UpdateInvitation(request).invitation


def timestamp_in(delta: timedelta) -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    stamp.FromSeconds(stamp.seconds + int(delta.total_seconds()))
    return stamp


def lifetime(invitation: pb.Invitation) -> timedelta:
    return invitation.expire_time.ToDatetime() - invitation.create_time.ToDatetime()


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def stored_rows(api: Api, table: str, **where: str) -> list[dict[str, Any]]:
    condition = " AND ".join(f"{column} = :{column}" for column in where) or "1 = 1"
    with api.engine.connect() as connection:
        result = connection.execute(text(f"SELECT * FROM {table} WHERE {condition}"), where)
        return [dict(row._mapping) for row in result]


# --- lifecycle -----------------------------------------------------------------------


def test_full_lifecycle_invite_list_resend_accept(api: Api, org: Org) -> None:
    email = new_email()
    created = org.invite(email, "developer")
    invitation = created.invitation
    assert created.token
    assert invitation.id
    assert invitation.organization_id == org.id
    assert invitation.email == email
    assert invitation.role == "developer"
    assert invitation.state == PENDING
    assert invitation.inviter_user_id == org.admin.user_id

    assert invitation.id in org.listed_ids(PENDING)
    assert invitation.id not in org.listed_ids(ACCEPTED)
    assert org.get(invitation.id) == invitation

    resent = resend(org.admin, invitation.id)
    assert resent.token
    assert resent.token != created.token
    assert resent.invitation.state == PENDING
    assert resent.invitation.id == invitation.id

    # The old token stopped working; the new one works, for whoever holds it.
    someone = api.client()
    old = failure(lambda: accept(someone, token=created.token))
    assert old.code == Code.NOT_FOUND
    count_before = org.member_count()
    member = accept(someone, token=resent.token)
    assert member.organization_id == org.id
    assert member.user.id == someone.user_id
    assert member.role == "developer"
    assert org.members()[someone.user_id] == "developer"
    assert org.member_count() == count_before + 1

    assert org.get(invitation.id).state == ACCEPTED
    assert invitation.id in org.listed_ids(ACCEPTED)
    assert invitation.id not in org.listed_ids(PENDING)

    again = failure(lambda: accept(api.client(), token=resent.token))
    assert (again.code, again.reason) == (Code.FAILED_PRECONDITION, "INVITATION_NOT_PENDING")
    assert resent.token not in again.message


def test_accept_by_id_with_matching_verified_email(api: Api, org: Org) -> None:
    email = new_email()
    invitation = org.invite(email, "viewer").invitation
    user = invitee(api, email)
    assert [i.id for i in my_invitations(user)] == [invitation.id]
    member = accept(user, invitation_id=invitation.id)
    assert (member.user.id, member.role) == (user.user_id, "viewer")
    assert org.members()[user.user_id] == "viewer"
    assert org.get(invitation.id).state == ACCEPTED
    assert my_invitations(user) == []


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"email": "someone-else@example.com", "email_verified": True}, id="wrong"),
        pytest.param({"email_verified": False}, id="unverified"),
        pytest.param({}, id="no-email"),
    ],
)
def test_accept_or_decline_by_id_needs_the_verified_invited_email(
    api: Api, org: Org, claims: dict[str, Any]
) -> None:
    email = new_email()
    invitation = org.invite(email).invitation
    claims = {"email": email, **claims} if claims else {}
    stranger = api.client(**claims)
    missing = failure(lambda: accept(stranger, invitation_id=str(uuid.uuid4())))
    for attempt in (
        lambda: accept(stranger, invitation_id=invitation.id),
        lambda: decline(stranger, invitation_id=invitation.id),
    ):
        refused = failure(attempt)
        assert refused.code == Code.NOT_FOUND
        assert refused.message == missing.message
    assert stranger.user_id not in org.members()
    assert org.get(invitation.id).state == PENDING


@pytest.mark.parametrize("by", ["invitation_id", "token"])
def test_decline(api: Api, org: Org, by: str) -> None:
    email = new_email()
    created = org.invite(email)
    user = invitee(api, email)
    assert created.invitation.id in [i.id for i in my_invitations(user)]
    name = created.invitation.id if by == "invitation_id" else created.token
    declined = decline(user, **{by: name})
    assert declined.id == created.invitation.id
    assert declined.state == DECLINED
    assert org.get(created.invitation.id).state == DECLINED
    assert created.invitation.id in org.listed_ids(DECLINED)
    assert my_invitations(user) == []
    assert user.user_id not in org.members()
    late = failure(lambda: accept(user, token=created.token))
    assert (late.code, late.reason) == (Code.FAILED_PRECONDITION, "INVITATION_NOT_PENDING")


def test_revoke_then_accept_fails(api: Api, org: Org) -> None:
    email = new_email()
    created = org.invite(email)
    revoked = revoke(org.admin, created.invitation.id)
    assert revoked.state == REVOKED
    assert org.get(created.invitation.id).state == REVOKED
    assert created.invitation.id in org.listed_ids(REVOKED)
    user = invitee(api, email)
    assert my_invitations(user) == []
    for attempt in (
        lambda: accept(user, token=created.token),
        lambda: accept(user, invitation_id=created.invitation.id),
    ):
        refused = failure(attempt)
        assert (refused.code, refused.reason) == (
            Code.FAILED_PRECONDITION,
            "INVITATION_NOT_PENDING",
        )
    again = failure(lambda: revoke(org.admin, created.invitation.id))
    assert again.code == Code.FAILED_PRECONDITION
    resent = failure(lambda: resend(org.admin, created.invitation.id))
    assert resent.code == Code.FAILED_PRECONDITION
    assert user.user_id not in org.members()


def test_expiry_new_invitation_and_revival(api: Api, org: Org) -> None:
    """One short wait covers every expiry rule."""
    email = new_email()
    short = org.invite(email, ttl=Duration(seconds=1))
    assert lifetime(short.invitation) == timedelta(seconds=1)
    user = invitee(api, email)
    time.sleep(1.2)

    expired_id = short.invitation.id
    assert org.get(expired_id).state == EXPIRED
    assert org.get(expired_id, by=user).state == EXPIRED
    assert expired_id in org.listed_ids(EXPIRED)
    assert expired_id not in org.listed_ids(PENDING)
    assert my_invitations(user) == []
    for attempt in (
        lambda: accept(user, token=short.token),
        lambda: accept(user, invitation_id=expired_id),
    ):
        refused = failure(attempt)
        assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "INVITATION_EXPIRED")
    assert user.user_id not in org.members()

    # The expired invitation no longer holds the email's pending slot ...
    fresh = org.invite(email)
    assert fresh.invitation.state == PENDING
    assert org.get(expired_id).state == EXPIRED
    # ... so it cannot be revived while the new one is pending.
    blocked = failure(lambda: resend(org.admin, expired_id))
    assert blocked.code == Code.ALREADY_EXISTS
    assert org.get(expired_id).state == EXPIRED

    revoke(org.admin, fresh.invitation.id)
    revived = resend(org.admin, expired_id)
    assert revived.invitation.state == PENDING
    assert revived.token
    assert revived.token != short.token
    assert lifetime(revived.invitation) > timedelta(days=6)
    assert org.get(expired_id).state == PENDING
    assert [i.id for i in my_invitations(user)] == [expired_id]
    assert accept(user, token=revived.token).role == "developer"
    assert org.get(expired_id).state == ACCEPTED


# --- validation and rules on create ---------------------------------------------------


def test_ttl_defaults_to_seven_days(org: Org) -> None:
    invitation = org.invite().invitation
    assert lifetime(invitation) == timedelta(days=7)
    thirty = org.invite(ttl=Duration(seconds=30 * 86400)).invitation
    assert lifetime(thirty) == timedelta(days=30)


@pytest.mark.parametrize(
    "seconds", [31 * 86400, 30 * 86400 + 1, -60, 0], ids=["31d", "30d+1s", "negative", "zero"]
)
def test_ttl_out_of_range(org: Org, seconds: int) -> None:
    email = new_email()
    refused = failure(lambda: org.invite(email, ttl=Duration(seconds=seconds)))
    assert refused.code == Code.INVALID_ARGUMENT
    assert refused.violations == ["ttl"]
    assert email not in [i.email for i in org.list()]


@pytest.mark.parametrize(
    "email", ["", "not-an-email", "a@b", "two@@example.com", "sp ace@example.com"]
)
def test_invalid_email(org: Org, email: str) -> None:
    refused = failure(lambda: org.invite(email or " "))
    assert refused.code == Code.INVALID_ARGUMENT
    assert refused.violations == ["email"]


@pytest.mark.parametrize("role", ["no-such-role", ""])
def test_unknown_role(org: Org, role: str) -> None:
    refused = failure(
        lambda: org.admin.CreateInvitation(
            rpc.CreateInvitationRequest(organization_id=org.id, email=new_email(), role=role)
        )
    )
    assert refused.code == Code.INVALID_ARGUMENT
    assert refused.violations == ["role"]
    assert org.list() == []


def test_only_owners_invite_owners(api: Api, org: Org) -> None:
    email = new_email()
    denied = failure(lambda: org.invite(email, "owner", by=org.admin))
    assert denied.code == Code.PERMISSION_DENIED
    created = org.invite(email, "owner", by=org.owner)
    assert created.invitation.role == "owner"
    user = invitee(api, email)
    assert accept(user, invitation_id=created.invitation.id).role == "owner"
    assert org.members()[user.user_id] == "owner"


@pytest.mark.parametrize("role", ["developer", "viewer"])
def test_non_admins_cannot_invite(api: Api, org: Org, role: str) -> None:
    member = api.client()
    org.owner.AddMember(
        rpc.AddMemberRequest(organization_id=org.id, user_id=member.user_id, role=role)
    )
    denied = failure(lambda: org.invite(by=member))
    assert denied.code == Code.PERMISSION_DENIED
    listed = failure(
        lambda: member.ListInvitations(rpc.ListInvitationsRequest(organization_id=org.id))
    )
    assert listed.code == Code.PERMISSION_DENIED


def test_non_member_cannot_invite_or_list(api: Api, org: Org) -> None:
    outsider = api.client()
    nowhere = failure(lambda: org.invite(by=outsider))
    random_org = rpc.CreateInvitationRequest(
        organization_id=str(uuid.uuid4()), email=new_email(), role="viewer"
    )
    missing = failure(lambda: outsider.CreateInvitation(random_org))
    assert nowhere.code == missing.code == Code.NOT_FOUND
    assert nowhere.message == missing.message
    listed = failure(
        lambda: outsider.ListInvitations(rpc.ListInvitationsRequest(organization_id=org.id))
    )
    assert listed.code == Code.NOT_FOUND


def test_inviting_a_member_is_already_exists(api: Api, org: Org) -> None:
    email = new_email()
    member = invitee(api, email)
    org.owner.AddMember(
        rpc.AddMemberRequest(organization_id=org.id, user_id=member.user_id, role="viewer")
    )
    refused = failure(lambda: org.invite(email))
    assert (refused.code, refused.reason) == (Code.ALREADY_EXISTS, "ALREADY_MEMBER")
    assert org.list() == []


def test_duplicate_pending_invitation(org: Org) -> None:
    email = new_email()
    first = org.invite(email, "viewer")
    refused = failure(lambda: org.invite(email, "developer"))
    assert (refused.code, refused.reason) == (Code.ALREADY_EXISTS, "INVITATION_PENDING")
    # Emails compare case-insensitively.
    shouted = failure(lambda: org.invite(email.upper(), "developer"))
    assert (shouted.code, shouted.reason) == (Code.ALREADY_EXISTS, "INVITATION_PENDING")
    assert org.listed_ids() == [first.invitation.id]
    # Once the pending one is revoked the email may be invited again.
    revoke(org.admin, first.invitation.id)
    second = org.invite(email, "developer")
    assert org.listed_ids(PENDING) == [second.invitation.id]


def test_request_id_replay_returns_same_invitation_without_token(api: Api, org: Org) -> None:
    email = new_email()
    request_id = str(uuid.uuid4())
    first = org.invite(email, request_id=request_id)
    again = org.invite(email, request_id=request_id)
    assert first.token
    assert again.invitation.id == first.invitation.id
    assert again.token == ""
    assert org.listed_ids() == [first.invitation.id]
    assert len(org.events("invitation.created")) == 1
    # The token shown the first time still works.
    assert accept(api.client(), token=first.token).role == "developer"


# --- UpdateInvitation ----------------------------------------------------------------


def test_update_role_and_expire_time(api: Api, org: Org) -> None:
    email = new_email()
    created = org.invite(email, "viewer")
    changed = update(org.admin, created.invitation.id, ["role"], role="developer")
    assert changed.role == "developer"
    assert changed.expire_time == created.invitation.expire_time

    target = timestamp_in(timedelta(days=2))
    moved = update(org.admin, created.invitation.id, ["expire_time"], expire_time=target)
    assert moved.expire_time.seconds == target.seconds
    assert moved.role == "developer"
    # A field outside the mask is ignored.
    only_role = update(
        org.admin,
        created.invitation.id,
        ["role"],
        role="viewer",
        expire_time=timestamp_in(timedelta(days=20)),
    )
    assert (only_role.role, only_role.expire_time.seconds) == ("viewer", target.seconds)
    assert org.get(created.invitation.id) == only_role
    assert len(org.events("invitation.updated")) == 3
    assert accept(invitee(api, email), token=created.token).role == "viewer"


@pytest.mark.parametrize(
    ("paths", "fields", "violation"),
    [
        (["expire_time"], {"expire_time": timestamp_in(timedelta(hours=-1))}, "expire_time"),
        (["expire_time"], {"expire_time": timestamp_in(timedelta(days=31))}, "expire_time"),
        (["role"], {"role": "no-such-role"}, "role"),
        (["email"], {"email": "other@example.com"}, "update_mask"),
        (["nonsense"], {}, "update_mask"),
    ],
    ids=["past", "beyond-30-days", "unknown-role", "immutable", "unknown-path"],
)
def test_update_invalid(org: Org, paths: list[str], fields: dict[str, Any], violation: str) -> None:
    created = org.invite(role="viewer")
    refused = failure(lambda: update(org.admin, created.invitation.id, paths, **fields))
    assert refused.code == Code.INVALID_ARGUMENT
    assert len(refused.violations) == 1
    assert refused.violations[0].endswith(violation)
    assert org.get(created.invitation.id) == created.invitation


def test_update_only_pending(api: Api, org: Org) -> None:
    created = org.invite(role="viewer")
    revoke(org.admin, created.invitation.id)
    refused = failure(lambda: update(org.admin, created.invitation.id, ["role"], role="developer"))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "INVITATION_NOT_PENDING")
    assert org.get(created.invitation.id).role == "viewer"


def test_admin_cannot_update_to_owner(org: Org) -> None:
    created = org.invite(role="viewer")
    denied = failure(lambda: update(org.admin, created.invitation.id, ["role"], role="owner"))
    assert denied.code == Code.PERMISSION_DENIED
    assert update(org.owner, created.invitation.id, ["role"], role="owner").role == "owner"


# --- visibility ------------------------------------------------------------------------


def test_get_invitation_visibility(api: Api, org: Org) -> None:
    email = new_email()
    created = org.invite(email)
    assert org.get(created.invitation.id, by=org.owner) == created.invitation
    assert org.get(created.invitation.id, by=invitee(api, email)) == created.invitation

    missing = failure(lambda: org.get(str(uuid.uuid4()), by=api.client()))
    assert missing.code == Code.NOT_FOUND
    for other in (
        api.client(),
        invitee(api, email, verified=False),
        api.client(email=new_email(), email_verified=True),
    ):
        hidden = failure(lambda other=other: org.get(created.invitation.id, by=other))
        assert (hidden.code, hidden.message, hidden.reason) == (
            missing.code,
            missing.message,
            missing.reason,
        )
        for mutate in (
            lambda other=other: revoke(other, created.invitation.id),
            lambda other=other: resend(other, created.invitation.id),
        ):
            refused = failure(mutate)
            assert (refused.code, refused.message) == (missing.code, missing.message)
    assert org.get(created.invitation.id).state == PENDING


def test_members_without_invitations_list_get_permission_denied(api: Api, org: Org) -> None:
    viewer = api.client()
    org.owner.AddMember(
        rpc.AddMemberRequest(organization_id=org.id, user_id=viewer.user_id, role="viewer")
    )
    created = org.invite()
    denied = failure(lambda: org.get(created.invitation.id, by=viewer))
    assert denied.code == Code.PERMISSION_DENIED
    assert failure(lambda: revoke(viewer, created.invitation.id)).code == Code.PERMISSION_DENIED


def test_invalid_invitation_ids(api: Api, org: Org) -> None:
    assert failure(lambda: org.get("")).code == Code.INVALID_ARGUMENT
    assert failure(lambda: org.get("not-a-uuid")).code == Code.NOT_FOUND
    assert failure(lambda: accept(api.client())).code == Code.INVALID_ARGUMENT
    unknown = failure(lambda: accept(api.client(), token="no-such-token"))
    assert unknown.code == Code.NOT_FOUND
    assert "no-such-token" not in unknown.message


def test_list_my_invitations_across_organizations(api: Api, org: Org) -> None:
    email = new_email()
    other_owner = api.client()
    other_org = other_owner.create_org()
    first = org.invite(email, "viewer").invitation
    second = other_owner.CreateInvitation(
        rpc.CreateInvitationRequest(organization_id=other_org.id, email=email, role="developer")
    ).invitation
    org.invite(new_email())  # someone else's

    user = invitee(api, email)
    mine = user.ListMyInvitations(rpc.ListMyInvitationsRequest())
    assert [i.id for i in mine.invitations] == [first.id, second.id]
    assert {i.organization_id for i in mine.invitations} == {org.id, other_org.id}
    assert mine.total_size == 2
    # Paging works too.
    page = user.ListMyInvitations(rpc.ListMyInvitationsRequest(page_size=1))
    assert [i.id for i in page.invitations] == [first.id]
    assert page.next_page_token
    rest = user.ListMyInvitations(
        rpc.ListMyInvitationsRequest(page_size=1, page_token=page.next_page_token)
    )
    assert [i.id for i in rest.invitations] == [second.id]
    assert rest.next_page_token == ""

    assert my_invitations(invitee(api, email, verified=False)) == []
    assert my_invitations(api.client()) == []


# --- token secrecy --------------------------------------------------------------------


def _contains(message: Any, token: str) -> bool:
    return token in str(message) or token.encode() in message.SerializeToString()


def test_token_is_never_shown_again_and_stored_hashed(api: Api, org: Org) -> None:
    email = new_email()
    created = org.invite(email)
    resent = resend(org.admin, created.invitation.id)
    tokens = [created.token, resent.token]
    user = invitee(api, email)
    decline(user, token=resent.token)

    outputs: list[Any] = [
        org.admin.ListInvitations(rpc.ListInvitationsRequest(organization_id=org.id)),
        org.admin.GetInvitation(rpc.GetInvitationRequest(invitation_id=created.invitation.id)),
        user.ListMyInvitations(rpc.ListMyInvitationsRequest()),
        org.owner.ListAuditEvents(rpc.ListAuditEventsRequest(organization_id=org.id)),
    ]
    for token in tokens:
        assert all(not _contains(output, token) for output in outputs)
        for event in org.events():
            assert all(token not in value for value in event.details.values())

    [row] = stored_rows(api, "invitations", id=created.invitation.id)
    assert row["token_hash"] == sha256(resent.token)
    assert sha256(created.token) != row["token_hash"]
    for token in tokens:
        assert all(token not in str(value) for value in row.values())
        for audit_row in stored_rows(api, "audit_events", organization_id=org.id):
            assert all(token not in str(value) for value in audit_row.values())


# --- roles and audit ---------------------------------------------------------------------


def test_delete_role_held_only_by_pending_invitation(org: Org) -> None:
    org.owner.CreateRole(
        rpc.CreateRoleRequest(organization_id=org.id, name="auditor", permissions=["audit.list"])
    )
    created = org.invite(role="auditor")
    delete = rpc.DeleteRoleRequest(organization_id=org.id, name="auditor")
    refused = failure(lambda: org.owner.DeleteRole(delete))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "ROLE_IN_USE")
    revoke(org.admin, created.invitation.id)
    org.owner.DeleteRole(delete)
    roles = org.owner.ListRoles(rpc.ListRolesRequest(organization_id=org.id)).roles
    assert "auditor" not in [r.name for r in roles]


def test_audit_events(api: Api, org: Org) -> None:
    accepted_email, declined_email = new_email(), new_email()
    accepted = org.invite(accepted_email, "viewer")
    declined = org.invite(declined_email)
    revoked = org.invite()
    update(org.admin, accepted.invitation.id, ["role"], role="developer")
    resent = resend(org.admin, accepted.invitation.id)
    accepter = invitee(api, accepted_email)
    accept(accepter, token=resent.token)
    decliner = invitee(api, declined_email)
    decline(decliner, invitation_id=declined.invitation.id)
    revoke(org.owner, revoked.invitation.id)

    admin_id, owner_id = org.admin.user_id, org.owner.user_id
    expected = {
        "invitation.created": [
            (admin_id, accepted.invitation.id),
            (admin_id, declined.invitation.id),
            (admin_id, revoked.invitation.id),
        ],
        "invitation.updated": [(admin_id, accepted.invitation.id)],
        "invitation.resent": [(admin_id, accepted.invitation.id)],
        "invitation.accepted": [(accepter.user_id, accepted.invitation.id)],
        "invitation.declined": [(decliner.user_id, declined.invitation.id)],
        "invitation.revoked": [(owner_id, revoked.invitation.id)],
    }
    for action, actors_and_targets in expected.items():
        found = org.events(action)  # newest first
        assert [(e.actor_user_id, e.target_id) for e in reversed(found)] == actors_and_targets
        assert all(e.target_type == "invitation" and e.organization_id == org.id for e in found)
    [created_event] = [
        e for e in org.events("invitation.created") if e.target_id == accepted.invitation.id
    ]
    assert created_event.details["email"] == accepted_email
    assert created_event.details["role"] == "viewer"


def test_accept_by_id_compares_emails_case_insensitively(api: Api, org: Org) -> None:
    email = new_email()
    invitation = org.invite(email.upper()).invitation
    assert invitation.email == email
    user = invitee(api, email.upper())
    assert accept(user, invitation_id=invitation.id).user.id == user.user_id


def test_existing_member_cannot_accept(api: Api, org: Org) -> None:
    created = org.invite()
    refused = failure(lambda: accept(org.admin, token=created.token))
    assert (refused.code, refused.reason) == (Code.ALREADY_EXISTS, "ALREADY_MEMBER")
    assert org.get(created.invitation.id).state == PENDING
    assert org.members()[org.admin.user_id] == "admin"
