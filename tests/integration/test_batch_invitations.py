"""BatchCreateInvitations on SQLite and PostgreSQL (`api`): all or nothing (AIP-233),
malformed entries reported field by field, the first entry that cannot be sent deciding
the error, and never a value of the request in an error."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import RpcFailure
from tests.conftest import failure
from tests.support.invitations import Org
from tests.support.invitations import accept
from tests.support.invitations import invitee
from tests.support.invitations import new_email
from tests.support.invitations import new_org

Code = grpc.StatusCode


@pytest.fixture
def org(api: Api) -> Org:
    return new_org(api)


def days(n: float) -> Duration:
    duration = Duration()
    duration.FromTimedelta(timedelta(days=n))
    return duration


def entry(email: str | None = None, role: str = "viewer", **fields: object) -> rpc.BatchInvitation:
    return rpc.BatchInvitation(email=email or new_email(), role=role, **fields)  # type: ignore[arg-type]


def batch(
    org: Org, *entries: rpc.BatchInvitation, by: str = "admin"
) -> rpc.BatchCreateInvitationsResponse:
    client = org.admin if by == "admin" else org.owner
    return client.BatchCreateInvitations(
        rpc.BatchCreateInvitationsRequest(organization_id=org.id, invitations=entries)
    )


def refused(org: Org, *entries: rpc.BatchInvitation, by: str = "admin") -> RpcFailure:
    """The batch's failure, after checking that it created nothing."""
    before = org.listed_ids()
    result = failure(lambda: batch(org, *entries, by=by))
    assert org.listed_ids() == before, "a failed batch must create nothing"
    for sent in entries:
        assert sent.email.lower() not in result.message.lower()  # fields, never values
    return result


def test_every_entry_is_sent_in_order_with_its_own_token(api: Api, org: Org) -> None:
    emails = [new_email() for _ in range(3)]
    reply = batch(
        org,
        entry(emails[0], "viewer"),
        entry(emails[1].upper(), "developer", ttl=days(1)),
        entry(emails[2], "admin"),
    )
    assert [i.email for i in reply.invitations] == emails
    assert [i.role for i in reply.invitations] == ["viewer", "developer", "admin"]
    assert {i.state for i in reply.invitations} == {pb.INVITATION_STATE_PENDING}
    lifetimes = [i.expire_time.ToDatetime() - i.create_time.ToDatetime() for i in reply.invitations]
    assert lifetimes == [timedelta(days=7), timedelta(days=1), timedelta(days=7)]
    assert len(set(reply.tokens)) == 3
    assert set(org.listed_ids()) >= {i.id for i in reply.invitations}
    created = [e.target_id for e in org.events("invitation.created")]
    assert sorted(created) == sorted(i.id for i in reply.invitations)
    member = accept(invitee(api, new_email()), token=reply.tokens[1])
    assert member.role == "developer"


def test_malformed_entries_are_each_named(org: Org) -> None:
    taken = new_email()
    result = refused(
        org,
        entry("not an email"),
        entry(role="no-such-role"),
        entry(ttl=days(31)),
        entry(taken),
        entry(taken.upper()),
        entry(role=""),
        entry(ttl=Duration(seconds=1, nanos=-1)),
    )
    assert result.code == Code.INVALID_ARGUMENT
    assert result.violations == [
        "invitations[0].email",
        "invitations[1].role",
        "invitations[2].ttl",
        "invitations[4].email",
        "invitations[5].role",
        "invitations[6].ttl",
    ]
    assert "no-such-role" not in result.message


@pytest.mark.parametrize("count", [0, 101])
def test_an_empty_or_oversized_batch_is_invalid(org: Org, count: int) -> None:
    result = refused(org, *[entry() for _ in range(count)])
    assert (result.code, result.violations) == (Code.INVALID_ARGUMENT, ["invitations"])


def test_a_hundred_entries_are_accepted(org: Org) -> None:
    assert len(batch(org, *[entry() for _ in range(100)]).invitations) == 100


def test_the_first_entry_that_cannot_be_sent_decides(api: Api, org: Org) -> None:
    pending = new_email()
    org.invite(pending)
    member_email = new_email()
    member = invitee(api, member_email)
    org.owner.AddMember(
        rpc.AddMemberRequest(organization_id=org.id, user_id=member.user_id, role="viewer")
    )
    result = refused(org, entry(), entry(member_email.upper()), entry(), entry(pending))
    assert (result.code, result.reason) == (Code.ALREADY_EXISTS, "ALREADY_MEMBER")
    assert "invitations[1]" in result.message
    result = refused(org, entry(), entry(), entry(pending), entry(member_email))
    assert (result.code, result.reason) == (Code.ALREADY_EXISTS, "INVITATION_PENDING")
    assert "invitations[2]" in result.message


def test_an_entry_the_caller_may_not_grant_fails_the_batch(org: Org) -> None:
    result = refused(org, entry(), entry(role="owner"))
    assert (result.code, result.reason) == (Code.PERMISSION_DENIED, "OWNER_REQUIRED")
    assert "invitations[1]" in result.message
    assert len(batch(org, entry(), entry(role="owner"), by="owner").invitations) == 2
