"""GetOrganization and ListOrganizations (`api`, both backends): who sees what,
filters, paging and page tokens, and platform callers. The session's server is shared,
so tests never assume an empty database."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc

from tests.conftest import Api
from tests.conftest import failure
from tests.support.clients import all_pages
from tests.support.clients import tag
from tests.support.organizations import add_member
from tests.support.organizations import get_org
from tests.support.organizations import ids
from tests.support.organizations import list_all
from tests.support.organizations import list_orgs
from tests.support.organizations import memberships
from tests.support.organizations import personal_org
from tests.support.organizations import when

Code = grpc.StatusCode


# --- get -----------------------------------------------------------------------------


def test_get_by_id_and_by_slug(api: Api) -> None:
    alice = api.client()
    organization = alice.create_org(f"Gettable {tag()}")

    assert get_org(alice, organization.id) == organization
    assert get_org(alice, slug=organization.slug) == organization


def test_non_member_gets_not_found_exactly_like_a_missing_organization(api: Api) -> None:
    owner, stranger = api.client(), api.client()
    organization = owner.create_org(f"Secret {tag()}")

    by_id = failure(lambda: get_org(stranger, organization.id))
    by_slug = failure(lambda: get_org(stranger, slug=organization.slug))
    missing_id = failure(lambda: get_org(stranger, str(uuid.uuid4())))
    missing_slug = failure(lambda: get_org(stranger, slug=f"no-such-{tag()}"))

    assert by_id.code == Code.NOT_FOUND
    assert by_slug == by_id
    assert missing_id == by_id
    assert missing_slug == by_id
    assert organization.id not in by_id.message
    assert organization.slug not in by_slug.message


def test_platform_caller_can_get_any_organization(api: Api) -> None:
    organization = api.client().create_org(f"Platform visible {tag()}")
    platform = api.platform()

    assert get_org(platform, organization.id) == organization
    assert get_org(platform, slug=organization.slug) == organization


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(rpc.GetOrganizationRequest(), id="no-lookup"),
        pytest.param(rpc.GetOrganizationRequest(organization_id=""), id="empty-id"),
        pytest.param(rpc.GetOrganizationRequest(slug=""), id="empty-slug"),
    ],
)
def test_get_without_a_lookup_is_invalid(api: Api, request_: rpc.GetOrganizationRequest) -> None:
    error = failure(lambda: api.client().GetOrganization(request_))
    assert error.code == Code.INVALID_ARGUMENT
    assert len(error.violations) == 1


# --- list ----------------------------------------------------------------------------


def test_list_shows_only_the_callers_organizations(api: Api) -> None:
    alice, bob = api.client(), api.client()
    mine = [alice.create_org(f"Alice {tag()}") for _ in range(2)]
    theirs = bob.create_org(f"Bob {tag()}")

    reply = list_orgs(alice)

    expected = {personal_org(alice).id, *ids(mine)}
    assert set(ids(reply.organizations)) == expected
    assert theirs.id not in ids(reply.organizations)
    assert reply.total_size == 3
    assert reply.next_page_token == ""
    by_id = {o.id: o for o in reply.organizations}
    for organization in mine:
        assert by_id[organization.id] == organization


def test_list_filter_is_a_case_insensitive_substring_of_name_or_slug(api: Api) -> None:
    alice = api.client()
    unique = tag()
    by_name = alice.create_org(f"Quokka {unique} Land", slug=f"q-{tag()}")
    by_slug = alice.create_org("Plain", slug=f"wombat-{unique}-x")
    alice.create_org(f"Unrelated {tag()}")

    def matching(text: str) -> set[str]:
        reply = list_orgs(alice, filter=text)
        assert reply.total_size == len(reply.organizations)
        return set(ids(reply.organizations))

    assert matching(f"QUOKKA {unique.upper()}") == {by_name.id}
    assert matching(f"kka {unique} la") == {by_name.id}
    assert matching(f"WOMBAT-{unique.upper()}") == {by_slug.id}
    assert matching(unique) == {by_name.id, by_slug.id}
    assert matching(f"no such {tag()}") == set()


def test_list_filter_is_case_insensitive_beyond_ascii(api: Api) -> None:
    alice = api.client()
    unique = tag()
    wanted = alice.create_org(f"ÄRZTE Ölwerk {unique}")
    alice.create_org(f"Arzte Olwerk {unique}")

    assert ids(list_orgs(alice, filter=f"ärzte ölwerk {unique}").organizations) == [wanted.id]


@pytest.mark.parametrize(
    ("wanted", "decoy", "text"),
    [
        pytest.param("100% Pure", "1000 Pure", "0% p", id="percent"),
        pytest.param("snake_case", "snakeXcase", "e_c", id="underscore"),
        pytest.param("back\\slash", "backXslash", "k\\s", id="backslash"),
    ],
)
def test_list_filter_treats_wildcards_literally(
    api: Api, wanted: str, decoy: str, text: str
) -> None:
    alice = api.client()
    unique = tag()
    match = alice.create_org(f"{wanted} {unique}")
    alice.create_org(f"{decoy} {unique}")

    reply = list_orgs(alice, filter=text)

    assert ids(reply.organizations) == [match.id]
    assert reply.total_size == 1


def test_list_pages_through_everything_once(api: Api) -> None:
    alice = api.client()
    created = [alice.create_org(f"Paged {i} {tag()}") for i in range(7)]
    expected = {personal_org(alice).id, *ids(created)}

    pages = all_pages(lambda token: list_orgs(alice, page_size=3, page_token=token))

    assert [len(page.organizations) for page in pages] == [3, 3, 2]
    assert all(page.total_size == 8 for page in pages)
    assert all(page.next_page_token for page in pages[:-1])
    seen = [o for page in pages for o in page.organizations]
    assert len(ids(seen)) == len(set(ids(seen))), "no duplicates"
    assert set(ids(seen)) == expected
    ordering = [(when(o.create_time), o.id) for o in seen]
    assert ordering == sorted(ordering), "ordered by creation time, then id"
    # Created one after the other, so the page order is the creation order.
    assert ids(seen)[-7:] == ids(created)


def test_list_paging_is_stable_when_rows_are_inserted_between_pages(api: Api) -> None:
    alice = api.client()
    originals = [personal_org(alice).id] + [
        alice.create_org(f"Stable {i} {tag()}").id for i in range(5)
    ]

    first = list_orgs(alice, page_size=2)
    added = [alice.create_org(f"Late {i} {tag()}").id for i in range(3)]
    seen = ids(first.organizations)
    token = first.next_page_token
    while token:
        reply = list_orgs(alice, page_size=2, page_token=token)
        seen.extend(ids(reply.organizations))
        token = reply.next_page_token

    assert len(seen) == len(set(seen)), "no duplicates"
    assert [i for i in seen if i in originals] == originals, "no gaps, same order"
    assert seen == originals + added


def test_page_size_zero_means_fifty_and_large_sizes_are_coerced(api: Api) -> None:
    alice = api.client()
    for i in range(50):
        alice.create_org(f"Bulk {i} {tag()}")

    default = list_orgs(alice, page_size=0)
    assert len(default.organizations) == 50
    assert default.total_size == 51
    assert default.next_page_token

    rest = list_orgs(alice, page_size=0, page_token=default.next_page_token)
    assert len(rest.organizations) == 1
    assert rest.next_page_token == ""

    huge = list_orgs(alice, page_size=5000)
    assert len(huge.organizations) == 51
    assert huge.next_page_token == ""


def test_platform_page_size_above_the_maximum_is_capped(api: Api) -> None:
    reply = list_orgs(api.platform(), page_size=5000)
    assert len(reply.organizations) == min(reply.total_size, 1000)


def test_negative_page_size_is_invalid(api: Api) -> None:
    error = failure(lambda: list_orgs(api.client(), page_size=-1))
    assert error.code == Code.INVALID_ARGUMENT
    assert error.violations == ["page_size"]


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _flip_first_char(token: str) -> str:
    return ("B" if token[0] == "A" else "A") + token[1:]


def _forge_payload(token: str) -> str:
    """Keeps the MAC but moves the cursor: the server must notice."""
    payload, _, mac = token.partition(".")
    fields = json.loads(_unb64(payload))
    fields["i"] = str(uuid.uuid4())
    return f"{_b64(json.dumps(fields, separators=(',', ':')).encode())}.{mac}"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_flip_first_char, id="flipped-char"),
        pytest.param(lambda token: token[:-3], id="truncated"),
        pytest.param(lambda token: token + "x", id="appended"),
        pytest.param(lambda token: token.partition(".")[0], id="no-mac"),
        pytest.param(_forge_payload, id="forged-payload"),
        pytest.param(lambda token: "garbage", id="garbage"),
        pytest.param(lambda token: "!!!.???", id="not-base64"),
        pytest.param(lambda token: "é.ü", id="non-ascii"),
    ],
)
def test_tampered_page_token_is_invalid(api: Api, tamper: Callable[[str], str]) -> None:
    alice = api.client()
    alice.create_org()
    token = list_orgs(alice, page_size=1).next_page_token
    assert token

    error = failure(lambda: list_orgs(alice, page_size=1, page_token=tamper(token)))

    assert error.code == Code.INVALID_ARGUMENT
    assert error.violations == ["page_token"]
    assert token not in error.message


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"filter": "other"}, id="filter"),
        pytest.param({"show_deleted": True}, id="show_deleted"),
    ],
)
def test_page_token_is_bound_to_its_request(api: Api, changed: dict[str, Any]) -> None:
    alice = api.client()
    for _ in range(2):
        alice.create_org(f"Bound {tag()}")
    token = list_orgs(alice, page_size=1).next_page_token
    assert token
    # The token still works with only page_size changed.
    assert list_orgs(alice, page_size=2, page_token=token).organizations

    error = failure(lambda: list_orgs(alice, page_size=1, page_token=token, **changed))

    assert error.code == Code.INVALID_ARGUMENT
    assert error.violations == ["page_token"]


def test_page_token_of_another_user_is_invalid(api: Api) -> None:
    alice, bob = api.client(), api.client()
    alice.create_org()
    bob.create_org()
    token = list_orgs(alice, page_size=1).next_page_token
    assert token

    error = failure(lambda: list_orgs(bob, page_size=1, page_token=token))

    assert error.code == Code.INVALID_ARGUMENT
    assert error.violations == ["page_token"]


def test_platform_caller_lists_every_organization(api: Api) -> None:
    alice, bob = api.client(), api.client()
    alices = {personal_org(alice).id, alice.create_org().id, alice.create_org().id}
    bobs = {personal_org(bob).id, bob.create_org().id}
    platform = api.platform()

    everything = list_orgs(platform, page_size=1)
    assert everything.total_size >= len(alices) + len(bobs)
    all_ids = set(ids(list_all(platform)))
    assert alices | bobs <= all_ids

    for user, expected in ((alice, alices), (bob, bobs)):
        reply = list_orgs(platform, user_id=user.user_id)
        assert set(ids(reply.organizations)) == expected
        assert reply.total_size == len(expected)


def test_platform_caller_can_filter_a_users_organizations(api: Api) -> None:
    alice = api.client()
    unique = tag()
    wanted = alice.create_org(f"Needle {unique}")
    alice.create_org(f"Haystack {tag()}")

    reply = list_orgs(api.platform(), user_id=alice.user_id, filter=f"needle {unique}")

    assert ids(reply.organizations) == [wanted.id]


def test_non_platform_caller_cannot_list_another_users_organizations(api: Api) -> None:
    alice, bob = api.client(), api.client()
    error = failure(lambda: list_orgs(alice, user_id=bob.user_id))
    assert error.code == Code.PERMISSION_DENIED


def test_caller_may_name_themselves_as_user_id(api: Api) -> None:
    alice = api.client()
    organization = alice.create_org()
    reply = list_orgs(alice, user_id=alice.user_id)
    assert set(ids(reply.organizations)) == {personal_org(alice).id, organization.id}


def test_organizations_of_a_member_are_listed_and_counted(api: Api) -> None:
    owner, viewer = api.client(), api.client()
    organization = owner.create_org(f"Shared {tag()}")

    add_member(owner, organization.id, viewer, "viewer")

    assert get_org(viewer, organization.id).member_count == 2
    assert organization.id in ids(list_orgs(viewer).organizations)
    assert memberships(viewer)[organization.id] == (organization.slug, "viewer")
