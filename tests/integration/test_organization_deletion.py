"""DeleteOrganization and UndeleteOrganization (`api`, both backends): soft delete with
a purge time, etags, slugs kept reserved, and who still sees a deleted organization."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import grpc
import pytest
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure
from tests.support.clients import tag
from tests.support.organizations import ACTIVE
from tests.support.organizations import DELETED
from tests.support.organizations import SLUG_RE
from tests.support.organizations import add_member
from tests.support.organizations import delete
from tests.support.organizations import get_org
from tests.support.organizations import ids
from tests.support.organizations import list_all
from tests.support.organizations import list_orgs
from tests.support.organizations import memberships
from tests.support.organizations import personal_org
from tests.support.organizations import undelete
from tests.support.organizations import update
from tests.support.organizations import when

Code = grpc.StatusCode


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
