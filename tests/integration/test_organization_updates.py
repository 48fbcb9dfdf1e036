"""UpdateOrganization on SQLite and PostgreSQL (`api`): update masks, etags, slugs,
validation, and who may update."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import failure
from tests.support.clients import tag
from tests.support.organizations import add_member
from tests.support.organizations import get_org
from tests.support.organizations import update
from tests.support.organizations import when

Code = grpc.StatusCode


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
