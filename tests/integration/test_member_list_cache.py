"""ListMembers answers from the read cache, and a change shows at once in the process that
made it (API.md, "Consistency of reads and permission checks"): memberships, roles, and
the members' own profiles, which a new token's claims refresh. On SQLite and PostgreSQL
(the `api` fixture); across processes, see tests/e2e/test_replicas.py.
"""

from __future__ import annotations

import uuid

from orgs.v1 import organization_service_pb2 as rpc

from tests.conftest import Api
from tests.conftest import Client


def listed(owner: Client, organization_id: str, role: str = "") -> dict[str, tuple[str, str]]:
    """user id -> (role, display name), as a cached read would answer."""
    reply = owner.ListMembers(
        rpc.ListMembersRequest(organization_id=organization_id, page_size=50, role=role)
    )
    return {m.user.id: (m.role, m.user.display_name) for m in reply.members}


def test_membership_changes_show_in_a_cached_list_at_once(api: Api) -> None:
    owner = api.client()
    organization_id = owner.create_org().id
    newcomer = api.client(name="Newcomer")
    newcomer_id = newcomer.user_id
    assert newcomer_id not in listed(owner, organization_id)
    assert listed(owner, organization_id, role="admin") == {}

    owner.AddMember(
        rpc.AddMemberRequest(organization_id=organization_id, user_id=newcomer_id, role="viewer")
    )
    assert listed(owner, organization_id)[newcomer_id] == ("viewer", "Newcomer")

    owner.UpdateMember(
        rpc.UpdateMemberRequest(organization_id=organization_id, user_id=newcomer_id, role="admin")
    )
    assert listed(owner, organization_id)[newcomer_id] == ("admin", "Newcomer")
    assert set(listed(owner, organization_id, role="admin")) == {newcomer_id}

    owner.RemoveMember(
        rpc.RemoveMemberRequest(organization_id=organization_id, user_id=newcomer_id)
    )
    assert newcomer_id not in listed(owner, organization_id)
    assert listed(owner, organization_id, role="admin") == {}


def test_a_profile_change_shows_in_every_cached_list_of_the_member_at_once(api: Api) -> None:
    subject = f"user-{uuid.uuid4().hex[:10]}"
    member = api.client(subject, name="Before")
    member_id = member.user_id
    owners = [api.client(), api.client()]
    organizations = [owner.create_org().id for owner in owners]
    for owner, organization_id in zip(owners, organizations, strict=True):
        owner.AddMember(
            rpc.AddMemberRequest(organization_id=organization_id, user_id=member_id, role="viewer")
        )
        assert listed(owner, organization_id)[member_id] == ("viewer", "Before")

    renamed = api.client(subject, name="After")  # the same user, newer claims
    assert renamed.user_id == member_id

    for owner, organization_id in zip(owners, organizations, strict=True):
        assert listed(owner, organization_id)[member_id] == ("viewer", "After")


def test_a_cached_page_follows_its_page_token(api: Api) -> None:
    """Pages are cached by position: the second page is not the first one again."""
    owner = api.client()
    organization_id = owner.create_org().id
    for _ in range(3):
        owner.AddMember(
            rpc.AddMemberRequest(
                organization_id=organization_id, user_id=api.client().user_id, role="viewer"
            )
        )
    seen: list[str] = []
    token = ""
    for _ in range(2):  # twice: the second walk reads every page from the cache
        seen.clear()
        while True:
            reply = owner.ListMembers(
                rpc.ListMembersRequest(
                    organization_id=organization_id, page_size=1, page_token=token
                )
            )
            seen.extend(m.user.id for m in reply.members)
            token = reply.next_page_token
            if not token:
                break
        assert len(seen) == len(set(seen)) == 4
