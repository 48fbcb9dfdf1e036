"""Organization RPCs against a real server, on SQLite and PostgreSQL (the `api` fixture).

The server is shared by the whole session, so every test works with fresh users and
unique names and never assumes it sees an empty database.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
ACTIVE = pb.ORGANIZATION_STATE_ACTIVE
DELETED = pb.ORGANIZATION_STATE_DELETED
Code = grpc.StatusCode


# --- helpers -------------------------------------------------------------------------


def tag() -> str:
    """A short unique, slug-safe token to keep names and slugs apart between tests."""
    return uuid.uuid4().hex[:10]


def when(timestamp: Any) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)


def get_org(client: Client, organization_id: str = "", slug: str = "") -> pb.Organization:
    if slug:
        request = rpc.GetOrganizationRequest(slug=slug)
    else:
        request = rpc.GetOrganizationRequest(organization_id=organization_id)
    return client.GetOrganization(request).organization


def list_orgs(client: Client, **fields: Any) -> rpc.ListOrganizationsResponse:
    return client.ListOrganizations(rpc.ListOrganizationsRequest(**fields))


def list_all(client: Client, page_size: int = 1000, **fields: Any) -> list[pb.Organization]:
    """Every organization of a list, following next_page_token."""
    found: list[pb.Organization] = []
    token = ""
    while True:
        reply = list_orgs(client, page_size=page_size, page_token=token, **fields)
        found.extend(reply.organizations)
        token = reply.next_page_token
        if not token:
            return found


def ids(organizations: Any) -> list[str]:
    return [organization.id for organization in organizations]


def personal_org(client: Client) -> pb.Organization:
    """The caller's personal organization (provisioned on the first call)."""
    personal = [o for o in list_all(client) if o.personal]
    assert len(personal) == 1
    return personal[0]


def update(
    client: Client, organization: pb.Organization, paths: list[str] | None = None
) -> pb.Organization:
    request = rpc.UpdateOrganizationRequest(
        organization=organization, update_mask=FieldMask(paths=paths or [])
    )
    return client.UpdateOrganization(request).organization


def delete(client: Client, organization_id: str, etag: str = "") -> pb.Organization:
    request = rpc.DeleteOrganizationRequest(organization_id=organization_id, etag=etag)
    return client.DeleteOrganization(request).organization


def undelete(client: Client, organization_id: str) -> pb.Organization:
    request = rpc.UndeleteOrganizationRequest(organization_id=organization_id)
    return client.UndeleteOrganization(request).organization


def memberships(client: Client) -> dict[str, tuple[str, str]]:
    reply = client.GetCurrentUser(rpc.GetCurrentUserRequest())
    return {m.organization_id: (m.slug, m.role) for m in reply.memberships}


# --- create --------------------------------------------------------------------------


def test_create_makes_the_caller_owner_with_a_default_workspace(api: Api) -> None:
    alice = api.client()
    name = f"Widgets {tag()}"
    before = datetime.now(UTC)

    organization = alice.create_org(name, description="we make widgets", labels={"tier": "gold"})

    assert uuid.UUID(organization.id).version == 4
    assert organization.name == name
    assert organization.description == "we make widgets"
    assert dict(organization.labels) == {"tier": "gold"}
    assert organization.personal is False
    assert organization.state == ACTIVE
    assert organization.member_count == 1
    assert organization.workspace_count == 1
    assert organization.etag
    assert organization.HasField("create_time")
    assert organization.HasField("update_time")
    assert when(organization.create_time) >= before - timedelta(seconds=5)
    assert organization.update_time == organization.create_time
    assert not organization.HasField("delete_time")
    assert not organization.HasField("purge_time")
    assert memberships(alice)[organization.id] == (organization.slug, "owner")
    assert get_org(alice, organization.id) == organization


def test_create_trims_the_name(api: Api) -> None:
    name = f"Trimmed {tag()}"
    organization = api.client().create_org(f"  {name}\t ")
    assert organization.name == name


@pytest.mark.parametrize(
    ("name", "expected_base"),
    [
        ("Acme Inc", "acme-inc"),
        ("  Hello,   World!  ", "hello-world"),
        ("Café Crème", "cafe-creme"),
        ("ACME__Corp", "acme-corp"),
    ],
)
def test_create_derives_the_slug_from_the_name(api: Api, name: str, expected_base: str) -> None:
    unique = tag()
    organization = api.client().create_org(f"{name} {unique}")
    assert organization.slug == f"{expected_base}-{unique}"


def test_same_name_twice_gets_a_second_slug_with_a_suffix(api: Api) -> None:
    alice = api.client()
    first = alice.create_org("Acme Inc")
    second = alice.create_org("Acme Inc")

    assert first.slug != second.slug
    for organization in (first, second):
        assert SLUG_RE.match(organization.slug), organization.slug
        assert re.fullmatch(r"acme-inc(-[a-z0-9]+)?", organization.slug), organization.slug
    # At most one of them can be the bare derived slug; the other carries a suffix.
    assert {first.slug, second.slug} - {"acme-inc"}


@pytest.mark.parametrize("name", ["x" * 200, "日本語の組織", "!!", "a", "-- weird --- name --"])
def test_derived_slugs_are_always_valid(api: Api, name: str) -> None:
    organization = api.client().create_org(name)
    assert SLUG_RE.match(organization.slug), organization.slug


def test_create_with_explicit_slug(api: Api) -> None:
    slug = f"explicit-{tag()}"
    organization = api.client().create_org("Whatever Name", slug=slug)
    assert organization.slug == slug


def test_create_with_a_taken_slug_is_already_exists(api: Api) -> None:
    slug = f"taken-{tag()}"
    api.client().create_org(slug=slug)

    error = failure(lambda: api.client().create_org(slug=slug))

    assert error.code == Code.ALREADY_EXISTS
    assert error.reason == "SLUG_TAKEN"


def test_create_with_a_slug_taken_by_a_derived_slug_is_already_exists(api: Api) -> None:
    derived = api.client().create_org(f"Derived {tag()}").slug
    error = failure(lambda: api.client().create_org(slug=derived))
    assert (error.code, error.reason) == (Code.ALREADY_EXISTS, "SLUG_TAKEN")


def many_labels(count: int) -> dict[str, str]:
    return {f"k{i}": "v" for i in range(count)}


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"name": "   "}, "name", id="blank-name"),
        pytest.param({"name": "x" * 201}, "name", id="long-name"),
        pytest.param({"name": "bad\x07name"}, "name", id="control-char-name"),
        pytest.param({"name": "line\nbreak"}, "name", id="newline-name"),
        pytest.param({"slug": "A_B"}, "slug", id="bad-slug"),
        pytest.param({"slug": "ab"}, "slug", id="short-slug"),
        pytest.param({"slug": "-abc"}, "slug", id="slug-leading-dash"),
        pytest.param({"slug": "a" * 64}, "slug", id="long-slug"),
        pytest.param({"description": "d" * 2001}, "description", id="long-description"),
        pytest.param({"labels": many_labels(65)}, "labels", id="too-many-labels"),
        pytest.param({"labels": {"9x": "v"}}, "labels", id="bad-label-key"),
        pytest.param({"labels": {"Key": "v"}}, "labels", id="uppercase-label-key"),
        pytest.param({"labels": {"k" * 64: "v"}}, "labels", id="long-label-key"),
        pytest.param({"labels": {"k": "v" * 257}}, "labels", id="long-label-value"),
    ],
)
def test_create_rejects_invalid_fields(api: Api, fields: dict[str, Any], bad_field: str) -> None:
    request = {"name": f"Valid {tag()}", **fields}
    alice = api.client()

    error = failure(lambda: alice.CreateOrganization(rpc.CreateOrganizationRequest(**request)))

    assert error.code == Code.INVALID_ARGUMENT
    assert len(error.violations) == 1, error.violations
    assert error.violations[0].startswith(bad_field)
    assert error.message
    assert not [o for o in list_all(alice) if not o.personal], "nothing may be created"


def test_create_reports_every_bad_field_at_once(api: Api) -> None:
    request = rpc.CreateOrganizationRequest(
        name="", slug="A_B", description="d" * 2001, labels={"9x": "v"}
    )
    error = failure(lambda: api.client().CreateOrganization(request))

    assert error.code == Code.INVALID_ARGUMENT
    assert len(error.violations) == 4, error.violations
    assert {v.partition("[")[0] for v in error.violations} == {
        "name",
        "slug",
        "description",
        "labels",
    }


def test_create_accepts_values_at_the_limits(api: Api) -> None:
    labels = {f"k{i}": "v" * 256 for i in range(64)}
    labels["a" + "b" * 62] = ""
    del labels["k0"]
    slug = ("s" + tag()).ljust(63, "x")
    organization = api.client().create_org(
        "n" * 200, slug=slug, description="d" * 2000, labels=labels
    )
    assert organization.name == "n" * 200
    assert organization.slug == slug
    assert len(organization.description) == 2000
    assert dict(organization.labels) == labels


# --- request_id idempotency ----------------------------------------------------------


def create_request(name: str, request_id: str, **fields: Any) -> rpc.CreateOrganizationRequest:
    return rpc.CreateOrganizationRequest(name=name, request_id=request_id, **fields)


def test_same_request_id_returns_the_first_result_and_creates_once(api: Api) -> None:
    alice = api.client()
    name = f"Idempotent {tag()}"
    request = create_request(name, str(uuid.uuid4()), description="once")

    first = alice.CreateOrganization(request).organization
    second = alice.CreateOrganization(request).organization

    assert second.id == first.id
    assert second.slug == first.slug
    assert list_orgs(alice, filter=name).total_size == 1
    assert list_orgs(alice).total_size == 2  # the personal organization and this one


def test_request_id_must_be_a_uuid(api: Api) -> None:
    request = create_request(f"Org {tag()}", "not-a-uuid")
    error = failure(lambda: api.client().CreateOrganization(request))
    assert error.code == Code.INVALID_ARGUMENT
    assert error.violations == ["request_id"]


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"name": "Another name"}, id="name"),
        pytest.param({"description": "different"}, id="description"),
        pytest.param({"labels": {"env": "prod"}}, id="labels"),
        pytest.param({"slug": "some-other-slug"}, id="slug"),
    ],
)
def test_request_id_reused_for_a_different_request(api: Api, changed: dict[str, Any]) -> None:
    alice = api.client()
    request_id = str(uuid.uuid4())
    original = {"name": f"Original {tag()}", "description": "first"}
    alice.CreateOrganization(create_request(request_id=request_id, **original))

    error = failure(
        lambda: alice.CreateOrganization(
            create_request(request_id=request_id, **{**original, **changed})
        )
    )

    assert error.code == Code.INVALID_ARGUMENT
    assert error.reason == "REQUEST_ID_REUSED"
    assert list_orgs(alice).total_size == 2


def test_same_request_id_from_another_user_creates_another_organization(api: Api) -> None:
    request = create_request(f"Shared rid {tag()}", str(uuid.uuid4()))
    alice, bob = api.client(), api.client()

    from_alice = alice.CreateOrganization(request).organization
    from_bob = bob.CreateOrganization(request).organization

    assert from_alice.id != from_bob.id
    assert from_alice.slug != from_bob.slug
    assert memberships(bob)[from_bob.id][1] == "owner"
    assert from_alice.id not in memberships(bob)


def test_without_request_id_every_create_is_new(api: Api) -> None:
    alice = api.client()
    name = f"No rid {tag()}"
    first, second = alice.create_org(name), alice.create_org(name)
    assert first.id != second.id
    assert list_orgs(alice, filter=name).total_size == 2


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

    pages: list[rpc.ListOrganizationsResponse] = []
    token = ""
    while True:
        reply = list_orgs(alice, page_size=3, page_token=token)
        pages.append(reply)
        token = reply.next_page_token
        if not token:
            break

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


# --- update --------------------------------------------------------------------------


def _set(resource: pb.Organization, field: str, value: Any) -> None:
    if field == "labels":
        resource.labels.clear()
        resource.labels.update(value)
    else:
        setattr(resource, field, value)


def _without_versioning(organization: pb.Organization) -> pb.Organization:
    copy = pb.Organization()
    copy.CopyFrom(organization)
    copy.ClearField("etag")
    copy.ClearField("update_time")
    return copy


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("name", "Renamed"),
        ("description", "new description"),
        ("labels", {"team": "core", "env": "prod"}),
        ("slug", None),  # a fresh unique slug
    ],
)
def test_update_changes_only_the_masked_field(api: Api, path: str, value: Any) -> None:
    alice = api.client()
    original = alice.create_org(
        f"Before {tag()}", description="old", labels={"old": "label"}, slug=f"old-{tag()}"
    )
    value = value if value is not None else f"new-slug-{tag()}"
    # Every mutable field is set: the mask alone decides what changes.
    resource = pb.Organization(
        id=original.id,
        name="Not applied",
        slug=f"not-applied-{tag()}",
        description="not applied",
        labels={"not": "applied"},
    )
    _set(resource, path, value)

    updated = update(alice, resource, [path])

    expected = pb.Organization()
    expected.CopyFrom(original)
    _set(expected, path, value)
    assert _without_versioning(updated) == _without_versioning(expected)
    assert get_org(alice, original.id) == updated


def test_update_with_an_empty_mask_writes_the_fields_the_request_sets(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Empty mask {tag()}", description="old", labels={"a": "b"})

    updated = update(alice, pb.Organization(id=original.id, description="only this"))

    assert updated.description == "only this"
    assert updated.name == original.name
    assert updated.slug == original.slug
    assert dict(updated.labels) == {"a": "b"}


def test_update_with_several_paths(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Multi {tag()}", labels={"a": "b"})
    resource = pb.Organization(id=original.id, name="Both", labels={"c": "d"})

    updated = update(alice, resource, ["name", "labels"])

    assert (updated.name, dict(updated.labels)) == ("Both", {"c": "d"})


def test_update_mask_star_replaces_every_mutable_field(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Star {tag()}", description="old", labels={"a": "b"})
    resource = pb.Organization(id=original.id, name="Starred", slug=f"star-{tag()}")

    updated = update(alice, resource, ["*"])

    assert (updated.name, updated.slug) == (resource.name, resource.slug)
    assert updated.description == ""
    assert dict(updated.labels) == {}
    assert updated.personal is False


def test_update_mask_can_clear_a_field(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Clear {tag()}", description="bye", labels={"a": "b"})

    updated = update(alice, pb.Organization(id=original.id), ["description", "labels"])

    assert updated.description == ""
    assert dict(updated.labels) == {}


@pytest.mark.parametrize(
    "path",
    ["no_such_field", "name.first", "personal", "id", "state", "member_count", "create_time"],
)
def test_update_mask_with_unknown_or_immutable_path_is_invalid(api: Api, path: str) -> None:
    alice = api.client()
    original = alice.create_org(f"Masked {tag()}")
    resource = pb.Organization(id=original.id, name="Changed", personal=True)

    error = failure(lambda: update(alice, resource, ["name", path]))

    assert error.code == Code.INVALID_ARGUMENT
    assert error.violations == ["update_mask"]
    assert get_org(alice, original.id) == original


def test_update_with_a_stale_etag_is_aborted(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Etag {tag()}")
    current = update(alice, pb.Organization(id=original.id, description="first"), ["description"])
    stale = pb.Organization(id=original.id, description="second", etag=original.etag)

    error = failure(lambda: update(alice, stale, ["description"]))

    assert error.code == Code.ABORTED
    assert error.reason == "ETAG_MISMATCH"
    assert get_org(alice, original.id) == current


def test_update_with_the_current_etag_succeeds_and_changes_the_etag(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Etag ok {tag()}")
    resource = pb.Organization(id=original.id, description="changed", etag=original.etag)

    updated = update(alice, resource, ["description"])

    assert updated.description == "changed"
    assert updated.etag
    assert updated.etag != original.etag
    assert when(updated.update_time) > when(original.update_time)
    assert updated.create_time == original.create_time
    assert get_org(alice, original.id).etag == updated.etag


def test_update_to_a_taken_slug_is_already_exists(api: Api) -> None:
    alice = api.client()
    taken = api.client().create_org(slug=f"taken-{tag()}").slug
    original = alice.create_org(f"Slug clash {tag()}")

    error = failure(lambda: update(alice, pb.Organization(id=original.id, slug=taken), ["slug"]))

    assert (error.code, error.reason) == (Code.ALREADY_EXISTS, "SLUG_TAKEN")
    assert get_org(alice, original.id) == original


def test_update_frees_the_old_slug(api: Api) -> None:
    alice = api.client()
    old_slug = f"moving-{tag()}"
    original = alice.create_org(slug=old_slug)
    update(alice, pb.Organization(id=original.id, slug=f"moved-{tag()}"), ["slug"])

    assert alice.create_org(slug=old_slug).slug == old_slug


def test_update_to_its_own_slug_is_fine(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Same slug {tag()}")
    updated = update(alice, pb.Organization(id=original.id, slug=original.slug), ["slug"])
    assert updated.slug == original.slug


@pytest.mark.parametrize(
    ("resource_fields", "path"),
    [
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"name": "x" * 201}, "name", id="long-name"),
        pytest.param({"name": "a\x00b"}, "name", id="control-char"),
        pytest.param({"slug": ""}, "slug", id="empty-slug"),
        pytest.param({"slug": "Not_A_Slug"}, "slug", id="bad-slug"),
        pytest.param({"description": "d" * 2001}, "description", id="long-description"),
        pytest.param({"labels": {"9x": "v"}}, "labels", id="bad-label"),
    ],
)
def test_invalid_update_changes_nothing(
    api: Api, resource_fields: dict[str, Any], path: str
) -> None:
    alice = api.client()
    original = alice.create_org(f"Unchanged {tag()}", description="keep")
    resource = pb.Organization(id=original.id, **resource_fields)

    error = failure(lambda: update(alice, resource, [path]))

    assert error.code == Code.INVALID_ARGUMENT
    assert len(error.violations) == 1
    assert error.violations[0].startswith(path)
    assert get_org(alice, original.id) == original


def test_update_without_id_is_invalid(api: Api) -> None:
    error = failure(lambda: update(api.client(), pb.Organization(name="x"), ["name"]))
    assert error.code == Code.INVALID_ARGUMENT
    assert error.violations == ["organization.id"]


def test_update_with_nothing_to_update_is_invalid(api: Api) -> None:
    alice = api.client()
    original = alice.create_org()
    error = failure(lambda: update(alice, pb.Organization(id=original.id)))
    assert error.code == Code.INVALID_ARGUMENT


def test_non_member_update_is_not_found(api: Api) -> None:
    original = api.client().create_org(f"Not yours {tag()}")
    stranger = api.client()

    error = failure(
        lambda: update(stranger, pb.Organization(id=original.id, name="Hijacked"), ["name"])
    )
    missing = failure(
        lambda: update(stranger, pb.Organization(id=str(uuid.uuid4()), name="x"), ["name"])
    )

    assert error.code == Code.NOT_FOUND
    assert error == missing


def test_platform_caller_can_update_any_organization(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Platform edit {tag()}")
    updated = update(api.platform(), pb.Organization(id=original.id, name="Edited"), ["name"])
    assert updated.name == "Edited"
    assert get_org(alice, original.id).name == "Edited"


# --- delete / undelete ---------------------------------------------------------------


def test_delete_soft_deletes_with_a_purge_time(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Doomed {tag()}")

    deleted = delete(alice, original.id)

    assert deleted.id == original.id
    assert deleted.state == DELETED
    assert deleted.HasField("delete_time")
    assert when(deleted.delete_time) >= when(original.create_time)
    purge_after = when(deleted.purge_time) - when(deleted.delete_time)
    assert abs(purge_after - timedelta(days=30)) < timedelta(seconds=1)
    assert deleted.etag != original.etag
    assert get_org(alice, original.id) == deleted


def test_deleted_organizations_are_listed_only_with_show_deleted(api: Api) -> None:
    alice = api.client()
    kept = alice.create_org(f"Kept {tag()}")
    gone = alice.create_org(f"Gone {tag()}")
    delete(alice, gone.id)
    personal = personal_org(alice).id

    default = list_orgs(alice)
    assert set(ids(default.organizations)) == {personal, kept.id}
    assert default.total_size == 2

    with_deleted = list_orgs(alice, show_deleted=True)
    assert set(ids(with_deleted.organizations)) == {personal, kept.id, gone.id}
    assert with_deleted.total_size == 3
    states = {o.id: o.state for o in with_deleted.organizations}
    assert states[gone.id] == DELETED

    stranger = api.client()
    assert gone.id not in ids(list_all(stranger, show_deleted=True))


def test_platform_caller_sees_deleted_organizations_with_show_deleted(api: Api) -> None:
    alice = api.client()
    gone = alice.create_org(f"Platform gone {tag()}")
    delete(alice, gone.id)
    platform = api.platform()

    assert gone.id not in ids(list_orgs(platform, user_id=alice.user_id).organizations)
    shown = list_orgs(platform, user_id=alice.user_id, show_deleted=True)
    assert gone.id in ids(shown.organizations)
    assert get_org(platform, gone.id).state == DELETED


def test_update_of_a_deleted_organization_is_failed_precondition(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Frozen {tag()}")
    deleted = delete(alice, original.id)

    error = failure(lambda: update(alice, pb.Organization(id=original.id, name="x"), ["name"]))

    assert error.code == Code.FAILED_PRECONDITION
    assert get_org(alice, original.id) == deleted


def test_delete_twice_is_failed_precondition(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Twice {tag()}")
    delete(alice, original.id)
    error = failure(lambda: delete(alice, original.id))
    assert error.code == Code.FAILED_PRECONDITION


def test_delete_with_a_stale_etag_is_aborted(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Etag delete {tag()}")
    current = update(alice, pb.Organization(id=original.id, description="moved on"))

    error = failure(lambda: delete(alice, original.id, etag=original.etag))

    assert (error.code, error.reason) == (Code.ABORTED, "ETAG_MISMATCH")
    assert get_org(alice, original.id) == current


def test_delete_with_the_current_etag_succeeds(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Etag delete ok {tag()}")
    assert delete(alice, original.id, etag=original.etag).state == DELETED


def test_undelete_restores_the_organization(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Phoenix {tag()}")
    deleted = delete(alice, original.id)

    restored = undelete(alice, original.id)

    assert restored.state == ACTIVE
    assert not restored.HasField("delete_time")
    assert not restored.HasField("purge_time")
    assert restored.etag not in {original.etag, deleted.etag}
    assert (restored.name, restored.slug) == (original.name, original.slug)
    assert restored.member_count == 1
    assert restored.workspace_count == 1
    assert get_org(alice, original.id) == restored
    assert original.id in ids(list_orgs(alice).organizations)
    assert memberships(alice)[original.id] == (original.slug, "owner")


def test_undelete_of_an_active_organization_is_failed_precondition(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Alive {tag()}")
    error = failure(lambda: undelete(alice, original.id))
    assert error.code == Code.FAILED_PRECONDITION
    assert get_org(alice, original.id) == original


def test_slug_of_a_deleted_organization_stays_reserved(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(slug=f"reserved-{tag()}")
    delete(alice, original.id)

    error = failure(lambda: api.client().create_org(slug=original.slug))

    assert (error.code, error.reason) == (Code.ALREADY_EXISTS, "SLUG_TAKEN")


def test_derived_slug_avoids_a_deleted_organizations_slug(api: Api) -> None:
    alice = api.client()
    name = f"Reuse {tag()}"
    original = alice.create_org(name)
    delete(alice, original.id)

    again = alice.create_org(name)

    assert again.slug != original.slug
    assert SLUG_RE.match(again.slug)


@pytest.mark.parametrize("operation", [delete, undelete])
def test_non_member_delete_and_undelete_are_not_found(
    api: Api, operation: Callable[[Client, str], pb.Organization]
) -> None:
    owner, stranger = api.client(), api.client()
    original = owner.create_org(f"Untouchable {tag()}")
    if operation is undelete:
        delete(owner, original.id)
    before = get_org(owner, original.id)

    error = failure(lambda: operation(stranger, original.id))
    missing = failure(lambda: operation(stranger, str(uuid.uuid4())))

    assert error.code == Code.NOT_FOUND
    assert error == missing
    assert get_org(owner, original.id) == before


@pytest.mark.parametrize("operation", [delete, undelete])
def test_delete_and_undelete_without_an_id_are_invalid(
    api: Api, operation: Callable[[Client, str], pb.Organization]
) -> None:
    error = failure(lambda: operation(api.client(), ""))
    assert error.code == Code.INVALID_ARGUMENT
    assert error.violations == ["organization_id"]


def test_non_member_gets_not_found_for_a_deleted_organization(api: Api) -> None:
    owner, stranger = api.client(), api.client()
    original = owner.create_org(f"Deleted secret {tag()}")
    delete(owner, original.id)

    error = failure(lambda: get_org(stranger, original.id))
    missing = failure(lambda: get_org(stranger, str(uuid.uuid4())))

    assert error.code == Code.NOT_FOUND
    assert error == missing


def test_platform_caller_can_delete_and_undelete(api: Api) -> None:
    alice = api.client()
    original = alice.create_org(f"Platform managed {tag()}")
    platform = api.platform()

    assert delete(platform, original.id).state == DELETED
    assert get_org(alice, original.id).state == DELETED
    assert undelete(platform, original.id).state == ACTIVE


# --- members other than the creator ------------------------------------------------


def add_member(owner: Client, organization_id: str, member: Client, role: str) -> None:
    request = rpc.AddMemberRequest(
        organization_id=organization_id, user_id=member.user_id, role=role
    )
    owner.AddMember(request)


def test_organizations_of_a_member_are_listed_and_counted(api: Api) -> None:
    owner, viewer = api.client(), api.client()
    organization = owner.create_org(f"Shared {tag()}")

    add_member(owner, organization.id, viewer, "viewer")

    assert get_org(viewer, organization.id).member_count == 2
    assert organization.id in ids(list_orgs(viewer).organizations)
    assert memberships(viewer)[organization.id] == (organization.slug, "viewer")


@pytest.mark.parametrize(
    ("role", "may_update"), [("viewer", False), ("developer", False), ("admin", True)]
)
def test_only_admins_and_owners_may_update(api: Api, role: str, may_update: bool) -> None:
    owner, member = api.client(), api.client()
    organization = owner.create_org(f"Roles {tag()}")
    add_member(owner, organization.id, member, role)
    resource = pb.Organization(id=organization.id, description=f"by {role}")

    if may_update:
        assert update(member, resource).description == f"by {role}"
    else:
        error = failure(lambda: update(member, resource))
        assert error.code == Code.PERMISSION_DENIED
        assert get_org(owner, organization.id).description == ""


@pytest.mark.parametrize("role", ["admin", "developer", "viewer"])
def test_only_owners_may_delete(api: Api, role: str) -> None:
    owner, member = api.client(), api.client()
    organization = owner.create_org(f"Keep {tag()}")
    add_member(owner, organization.id, member, role)

    error = failure(lambda: delete(member, organization.id))

    assert error.code == Code.PERMISSION_DENIED
    assert get_org(owner, organization.id).state == ACTIVE


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_deleted_organization_is_hidden_from_members_who_cannot_undelete_it(
    api: Api, role: str
) -> None:
    owner, member = api.client(), api.client()
    organization = owner.create_org(f"Hidden {tag()}")
    add_member(owner, organization.id, member, role)
    delete(owner, organization.id)

    assert organization.id not in ids(list_all(member, show_deleted=True))
    assert list_orgs(member, show_deleted=True).total_size == 1  # the personal one
    error = failure(lambda: get_org(member, organization.id))
    missing = failure(lambda: get_org(member, str(uuid.uuid4())))
    assert error.code == Code.NOT_FOUND
    assert error == missing
    undelete_error = failure(lambda: undelete(member, organization.id))
    assert undelete_error.code == Code.NOT_FOUND
    assert organization.id in ids(list_orgs(owner, show_deleted=True).organizations)


# --- provisioning --------------------------------------------------------------------


def test_first_call_provisions_the_user_and_one_personal_organization(api: Api) -> None:
    subject = f"new-{tag()}"
    alice = api.client(
        subject, email=f"{subject}@example.com", name="Alice Example", preferred_username=subject
    )

    reply = alice.GetCurrentUser(rpc.GetCurrentUserRequest())

    assert reply.user.subject == subject
    assert reply.user.email == f"{subject}@example.com"
    assert reply.user.username == subject
    assert reply.user.display_name == "Alice Example"
    assert uuid.UUID(reply.user.id)
    assert reply.user.HasField("create_time")
    listed = list_orgs(alice)
    assert listed.total_size == 1
    personal = listed.organizations[0]
    assert personal.personal is True
    assert personal.state == ACTIVE
    assert personal.member_count == 1
    assert personal.workspace_count == 1
    assert SLUG_RE.match(personal.slug)
    assert [(m.organization_id, m.slug, m.role) for m in reply.memberships] == [
        (personal.id, personal.slug, "owner")
    ]


def test_personal_organization_is_created_only_once(api: Api) -> None:
    subject = f"once-{tag()}"
    alice = api.client(subject)
    first = alice.GetCurrentUser(rpc.GetCurrentUserRequest())

    # Same subject, new token and a different set of claims: still the same user.
    again = api.client(subject, email=f"{subject}@example.com")
    second = again.GetCurrentUser(rpc.GetCurrentUserRequest())

    assert second.user.id == first.user.id
    assert list(second.memberships) == list(first.memberships)
    assert list_orgs(again).total_size == 1


def test_claims_update_the_user_record(api: Api) -> None:
    subject = f"renamed-{tag()}"
    before = api.client(subject, name="Old Name").GetCurrentUser(rpc.GetCurrentUserRequest())
    renamed = api.client(subject, name="New Name", email="new@example.com")

    after = renamed.GetCurrentUser(rpc.GetCurrentUserRequest())

    assert before.user.display_name == "Old Name"
    assert after.user.id == before.user.id
    assert after.user.display_name == "New Name"
    assert after.user.email == "new@example.com"
    assert after.user.create_time == before.user.create_time
    assert list_orgs(renamed).total_size == 1


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"name": "N" * 300}, id="long-name"),
        pytest.param({"name": "Bell\x07 Tab\t"}, id="control-chars-in-name"),
        pytest.param({"preferred_username": "U" * 300}, id="long-username"),
        pytest.param({"email": "e" * 300 + "@example.com"}, id="long-email"),
        pytest.param({"name": "日本語"}, id="non-latin-name"),
    ],
)
def test_provisioning_copes_with_unusual_claims(api: Api, claims: dict[str, Any]) -> None:
    alice = api.client(**claims)

    reply = alice.GetCurrentUser(rpc.GetCurrentUserRequest())

    assert [m.role for m in reply.memberships] == ["owner"]
    personal = personal_org(alice)
    assert SLUG_RE.match(personal.slug)
    assert 1 <= len(personal.name) <= 200


def test_personal_organization_cannot_be_made_non_personal(api: Api) -> None:
    alice = api.client()
    personal = personal_org(alice)
    resource = pb.Organization(id=personal.id, personal=False)

    error = failure(lambda: update(alice, resource, ["personal"]))

    assert error.code == Code.INVALID_ARGUMENT
    assert get_org(alice, personal.id).personal is True
