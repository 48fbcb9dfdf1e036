"""TransferOwnership: the rules on SQLite and PostgreSQL (`api`), and races between two
replicas on one PostgreSQL database (`pg_api`, `pg_api_peer`), where the calls meet in
the database rather than waiting for each other inside one server."""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc

from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure
from tests.support.races import results_together
from tests.support.rpc_outcomes import OK
from tests.support.rpc_outcomes import Result

Code = grpc.StatusCode
RACE_ROUNDS = 60


def transfer(client: Client, organization_id: str, user_id: str) -> Any:
    return client.TransferOwnership(
        rpc.TransferOwnershipRequest(organization_id=organization_id, user_id=user_id)
    )


def add(client: Client, organization_id: str, user_id: str, role: str) -> None:
    client.AddMember(
        rpc.AddMemberRequest(organization_id=organization_id, user_id=user_id, role=role)
    )


def org_with(owner: Client, members: dict[str, str]) -> str:
    """The id of a new organization of `owner`'s with these members (user id -> role)."""
    organization_id = owner.create_org().id
    for user_id, role in members.items():
        add(owner, organization_id, user_id, role)
    return organization_id


def roles(client: Client, organization_id: str) -> dict[str, str]:
    reply = client.ListMembers(rpc.ListMembersRequest(organization_id=organization_id))
    return {member.user.id: member.role for member in reply.members}


class Org:
    """An organization owned by `owner`, with an admin and a viewer."""

    def __init__(self, api: Api) -> None:
        self.owner = api.client()
        self.admin = api.client()
        self.viewer = api.client()
        self.id = self.owner.create_org().id
        self.owner_id = self.owner.user_id
        self.admin_id = self.admin.user_id
        self.viewer_id = self.viewer.user_id
        add(self.owner, self.id, self.admin_id, "admin")
        add(self.owner, self.id, self.viewer_id, "viewer")


@pytest.fixture
def org(api: Api) -> Org:
    return Org(api)


def test_the_member_becomes_owner_and_the_caller_admin(org: Org) -> None:
    reply = transfer(org.owner, org.id, org.viewer_id)
    assert reply.organization.id == org.id
    assert roles(org.owner, org.id) == {
        org.owner_id: "admin",
        org.admin_id: "admin",
        org.viewer_id: "owner",
    }
    (event,) = org.viewer.ListAuditEvents(
        rpc.ListAuditEventsRequest(organization_id=org.id, action="member.ownership_transferred")
    ).events
    assert (event.actor_user_id, event.target_id) == (org.owner_id, org.viewer_id)
    assert dict(event.details) == {"old_role": "viewer", "previous_owner_id": org.owner_id}


def test_transfer_to_an_owner_keeps_them_owner(org: Org) -> None:
    org.owner.UpdateMember(
        rpc.UpdateMemberRequest(organization_id=org.id, user_id=org.admin_id, role="owner")
    )
    transfer(org.owner, org.id, org.admin_id)
    assert roles(org.admin, org.id)[org.admin_id] == "owner"
    assert roles(org.admin, org.id)[org.owner_id] == "admin"


def test_only_an_owner_may_transfer(org: Org) -> None:
    denied = failure(lambda: transfer(org.admin, org.id, org.viewer_id))
    assert (denied.code, denied.reason) == (Code.PERMISSION_DENIED, "OWNER_REQUIRED")
    assert roles(org.owner, org.id)[org.owner_id] == "owner"


def test_a_platform_caller_who_is_no_member_has_nothing_to_transfer(api: Api, org: Org) -> None:
    refused = failure(lambda: transfer(api.platform(), org.id, org.viewer_id))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "NOT_A_MEMBER")


def test_a_non_member_cannot_be_made_owner(api: Api, org: Org) -> None:
    outsider_id = api.client().user_id
    for user_id in (outsider_id, str(uuid.uuid4())):
        refused = failure(lambda user_id=user_id: transfer(org.owner, org.id, user_id))
        assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "NOT_A_MEMBER")
    assert roles(org.owner, org.id)[org.owner_id] == "owner"


@pytest.mark.parametrize("user_id", ["", "not-a-uuid", "self"])
def test_a_missing_malformed_or_own_user_id_is_invalid(org: Org, user_id: str) -> None:
    target = org.owner_id.upper() if user_id == "self" else user_id
    invalid = failure(lambda: transfer(org.owner, org.id, target))
    assert (invalid.code, invalid.violations) == (Code.INVALID_ARGUMENT, ["user_id"])


def test_a_non_member_caller_sees_no_organization(api: Api, org: Org) -> None:
    hidden = failure(lambda: transfer(api.client(), org.id, org.viewer_id))
    assert (hidden.code, hidden.reason) == (Code.NOT_FOUND, "ORGANIZATION_NOT_FOUND")


# --- races between two replicas ------------------------------------------------------


def owners(client: Client, organization_id: str) -> set[str]:
    return {user for user, role in roles(client, organization_id).items() if role == "owner"}


@pytest.mark.postgres_only
def test_owners_transferring_to_each_other_leave_exactly_one_owner(
    pg_api: Api, pg_api_peer: Api
) -> None:
    """Both calls succeed, one after the other: the second hands ownership back."""
    a, b = pg_api.client(), pg_api_peer.client()
    a_id, b_id = a.user_id, b.user_id
    final: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_ in range(RACE_ROUNDS):
            org_id = org_with(a, {b_id: "owner"})
            results = results_together(
                [partial(transfer, a, org_id, b_id), partial(transfer, b, org_id, a_id)], pool=pool
            )
            where = f"round {round_}: {results}"
            assert results == [OK, OK], where
            remaining = owners(a, org_id) or owners(b, org_id)
            assert remaining in ({a_id}, {b_id}), where
            final["a" if remaining == {a_id} else "b"] += 1
    # The barrier makes the calls meet: both serial orders show up.
    assert set(final) == {"a", "b"}, final


@pytest.mark.postgres_only
def test_owners_transferring_to_different_members_both_succeed(
    pg_api: Api, pg_api_peer: Api
) -> None:
    a, b = pg_api.client(), pg_api_peer.client()
    x, y = pg_api.client(), pg_api.client()
    a_id, b_id, x_id, y_id = a.user_id, b.user_id, x.user_id, y.user_id
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_ in range(RACE_ROUNDS):
            org_id = org_with(a, {b_id: "owner", x_id: "viewer", y_id: "developer"})
            results = results_together(
                [partial(transfer, a, org_id, x_id), partial(transfer, b, org_id, y_id)], pool=pool
            )
            where = f"round {round_}: {results}"
            assert results == [OK, OK], where
            assert roles(x, org_id) == {
                a_id: "admin",
                b_id: "admin",
                x_id: "owner",
                y_id: "owner",
            }, where


@pytest.mark.postgres_only
def test_a_transfer_racing_the_removal_of_its_target_ends_in_a_serial_outcome(
    pg_api: Api, pg_api_peer: Api
) -> None:
    """The owner hands ownership to X while an admin removes X. Serially either the
    transfer comes first (X is an owner then, which an admin may not remove) or the
    removal does (X is no member then): exactly one call succeeds, an owner remains."""
    owner, admin = pg_api.client(), pg_api_peer.client()
    owner_id, admin_id = owner.user_id, admin.user_id
    seen: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_ in range(RACE_ROUNDS):
            x_id = pg_api.client().user_id
            org_id = org_with(owner, {admin_id: "admin", x_id: "viewer"})
            removal = partial(
                admin.RemoveMember, rpc.RemoveMemberRequest(organization_id=org_id, user_id=x_id)
            )
            transferred, removed = results_together(
                [partial(transfer, owner, org_id, x_id), removal], pool=pool
            )
            where = f"round {round_}: {transferred}, {removed}"
            if transferred == OK:
                assert removed == Result(Code.PERMISSION_DENIED, "OWNER_REQUIRED"), where
                assert owners(admin, org_id) == {x_id}, where
                seen["transfer first"] += 1
            else:
                assert transferred == Result(Code.FAILED_PRECONDITION, "NOT_A_MEMBER"), where
                assert removed == OK, where
                assert owners(admin, org_id) == {owner_id}, where
                seen["removal first"] += 1
    assert set(seen) == {"transfer first", "removal first"}, seen
