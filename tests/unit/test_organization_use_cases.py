"""Organization use cases over in-memory storage: create (slugs, idempotency), soft
delete and undelete, lists, etags, and the call's budget."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from orgservice.domain.budget import Budget
from orgservice.domain.budget import WouldBlock
from orgservice.domain.budget import unlimited
from orgservice.domain.models import Call
from orgservice.domain.models import Identity
from orgservice.domain.models import OrganizationFields
from orgservice.domain.models import OrganizationState
from orgservice.domain.models import PageRequest
from orgservice.domain.models import UserRef
from orgservice.domain.models import WorkspaceFields
from orgservice.domain.validation import SLUG_PATTERN
from orgservice.service.identity import IdentityService
from orgservice.service.organizations import PURGE_AFTER
from tests.unit.world import T0
from tests.unit.world import Cast
from tests.unit.world import World
from tests.unit.world import failure
from tests.unit.world import pages


def organization_ids(world: World) -> set[str]:
    return set(world.db.tables.organizations)


# --- create ----------------------------------------------------------------------------


def test_create_makes_the_caller_owner_with_roles_and_a_default_workspace(world: World) -> None:
    owner = world.call()
    organization = world.services.organizations.create(
        owner, OrganizationFields(name="  Acme Corp ", description="d", labels={"env": "prod"})
    )
    assert (organization.name, organization.slug, organization.labels) == (
        "Acme Corp",
        "acme-corp",
        {"env": "prod"},
    )
    assert (organization.member_count, organization.workspace_count) == (1, 1)
    assert organization.create_time == organization.update_time == T0
    assert organization.state is OrganizationState.ACTIVE
    roles = world.services.roles.list(owner, organization.id, lambda: PageRequest(limit=10))
    assert [r.name for r in roles.items] == ["owner", "admin", "developer", "viewer"]
    assert all(r.built_in for r in roles.items)
    workspaces = world.services.workspaces.list(owner, organization.id, lambda: PageRequest(10))
    assert [w.slug for w in workspaces.items] == ["default"]
    member = world.db.tables.memberships[organization.id, owner.caller.user_id]
    assert member.role == "owner"
    assert world.audit_actions(organization.id) == ["organization.created"]


def test_derived_slugs_are_valid_and_collisions_get_a_suffix(world: World) -> None:
    owner = world.call()
    first = world.organization(owner, "Acme")
    second = world.organization(owner, "ACME!")
    assert first.slug == "acme"
    assert second.slug.startswith("acme-")
    assert SLUG_PATTERN.fullmatch(second.slug)
    for name in ("日本語の組織", "x", "-" * 50, "Ünïcödé " * 25):
        assert SLUG_PATTERN.fullmatch(world.organization(owner, name).slug), name


def test_a_requested_slug_that_is_taken_is_refused(world: World) -> None:
    owner = world.call()
    world.organization(owner, "Acme", slug="acme")
    before = organization_ids(world)
    error = failure(lambda: world.organization(owner, "Other", slug="acme"))
    assert error.reason == "SLUG_TAKEN"
    assert organization_ids(world) == before


def test_create_reports_every_bad_field(world: World) -> None:
    error = failure(
        lambda: world.services.organizations.create(
            world.call(),
            OrganizationFields(name=" ", slug="A!", description="x" * 2001, labels={"Bad": "v"}),
        )
    )
    assert error.reason == "INVALID_ARGUMENT"
    fields = {v.field for v in getattr(error, "violations", [])}
    assert fields == {"name", "slug", "description", "labels['Bad']"}
    assert world.db.tables.organizations == {}


# --- idempotent creates ----------------------------------------------------------------


def test_a_repeated_request_id_returns_the_first_result(world: World) -> None:
    owner = world.call()
    request_id = str(uuid.uuid4())
    fields = OrganizationFields(name="Acme")
    first = world.services.organizations.create(owner, fields, request_id=request_id)
    # The same key in upper case is the same key.
    again = world.services.organizations.create(owner, fields, request_id=request_id.upper())
    assert again == first
    assert organization_ids(world) == {first.id}


def test_a_request_id_reused_for_another_request_is_refused(world: World) -> None:
    owner = world.call()
    request_id = str(uuid.uuid4())
    world.services.organizations.create(
        owner, OrganizationFields(name="Acme"), request_id=request_id
    )
    error = failure(
        lambda: world.services.organizations.create(
            owner, OrganizationFields(name="Other"), request_id=request_id
        )
    )
    assert error.reason == "REQUEST_ID_REUSED"
    assert len(organization_ids(world)) == 1


def test_request_ids_belong_to_their_caller_for_a_day(world: World) -> None:
    alice, bob = world.call(), world.call()
    request_id = str(uuid.uuid4())
    fields = OrganizationFields(name="Acme")
    first = world.services.organizations.create(alice, fields, request_id=request_id)
    theirs = world.services.organizations.create(bob, fields, request_id=request_id)
    world.clock.advance(timedelta(hours=24))
    assert world.services.organizations.create(alice, fields, request_id=request_id) == first
    world.clock.advance(timedelta(microseconds=1))
    later = world.services.organizations.create(alice, fields, request_id=request_id)
    assert len({first.id, theirs.id, later.id}) == 3
    assert len(organization_ids(world)) == 3


def test_a_replayed_create_of_an_organization_the_caller_left_is_not_shown(
    world: World, cast: Cast
) -> None:
    request_id = str(uuid.uuid4())
    founder = world.call()
    created = world.services.organizations.create(
        founder, OrganizationFields(name="Short-lived"), request_id=request_id
    )
    world.services.members.add(
        founder, created.id, UserRef(user_id=cast.owner.caller.user_id), "owner"
    )
    world.services.members.remove(founder, created.id, founder.caller.user_id)
    error = failure(
        lambda: world.services.organizations.create(
            founder, OrganizationFields(name="Short-lived"), request_id=request_id
        )
    )
    assert error.reason == "ORGANIZATION_NOT_FOUND"


@pytest.mark.parametrize(
    "request_id",
    [
        "{0f8fad5b-d9cb-469f-a165-70867728950e}",
        "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
        "0f8fad5bd9cb469fa16570867728950e",
        "0f8fad5b-d9cb-469f-a165-70867728950e\n",
        "yes",
    ],
)
def test_malformed_request_ids_are_refused(world: World, request_id: str) -> None:
    error = failure(
        lambda: world.services.organizations.create(
            world.call(), OrganizationFields(name="Acme"), request_id=request_id
        )
    )
    assert error.reason == "INVALID_ARGUMENT"
    assert world.db.tables.organizations == {}


# --- get, list, update -----------------------------------------------------------------


def test_get_by_id_or_slug_and_non_members_learn_nothing(world: World, cast: Cast) -> None:
    get = world.services.organizations.get
    assert get(cast.viewer, organization_id=cast.id.upper()).id == cast.id
    assert get(cast.viewer, slug=cast.organization.slug).id == cast.id
    assert get(cast.platform, organization_id=cast.id).id == cast.id
    hidden = failure(get, cast.outsider, organization_id=cast.id)
    assert hidden.reason == "ORGANIZATION_NOT_FOUND"
    for missing in (
        failure(get, cast.outsider, organization_id=str(uuid.uuid4())),
        failure(get, cast.outsider, organization_id="nonsense"),
        failure(get, cast.outsider, slug="no-such-slug"),
        failure(get, cast.outsider, slug="x" * 64),
    ):
        assert (missing.reason, missing.message) == (hidden.reason, hidden.message)


def test_lists_show_the_callers_organizations_or_all_to_platform_callers(world: World) -> None:
    alice, bob = world.call(), world.call()
    mine = {world.organization(alice, f"Alice {n}").id for n in range(3)}
    theirs = world.organization(bob, "Bob's").id

    def listed(call: Call, *, name_filter: str = "", user_id: str = "") -> set[str]:
        found = pages(
            lambda page: world.services.organizations.list(
                call, page, name_filter=name_filter, user_id=user_id
            ),
            limit=2,
        )
        return {o.id for p in found for o in p.items}

    assert listed(alice) == mine
    assert listed(world.platform_call()) == mine | {theirs}
    assert listed(world.platform_call(), user_id=bob.caller.user_id) == {theirs}
    assert listed(alice, name_filter="  ALICE 1 ") == {
        o for o in mine if world.db.tables.organizations[o].organization.name == "Alice 1"
    }
    assert failure(listed, alice, user_id=bob.caller.user_id).reason == "PERMISSION_DENIED"


def test_update_changes_the_given_fields_and_the_etag(world: World, cast: Cast) -> None:
    world.clock.advance(timedelta(minutes=1))
    updated = world.services.organizations.update(
        cast.admin,
        cast.id,
        lambda: OrganizationFields(name="Renamed", slug="renamed"),
        etag=cast.organization.etag,
    )
    assert (updated.name, updated.slug, updated.description) == ("Renamed", "renamed", "")
    assert updated.etag != cast.organization.etag
    assert updated.update_time == T0 + timedelta(minutes=1)
    # The old slug is free again, the new one is taken.
    assert world.organization(cast.owner, "Again", slug=cast.organization.slug)
    assert failure(lambda: world.organization(cast.owner, "X", slug="renamed")).reason == (
        "SLUG_TAKEN"
    )
    event = max(
        (e for e in world.db.tables.audit.values() if e.organization_id == cast.id),
        key=lambda e: e.seq,
    )
    assert (event.action, event.details) == ("organization.updated", {"fields": "name,slug"})


def test_update_with_a_stale_etag_is_aborted(world: World, cast: Cast) -> None:
    world.services.organizations.update(cast.admin, cast.id, lambda: OrganizationFields(name="A"))
    error = failure(
        lambda: world.services.organizations.update(
            cast.admin, cast.id, lambda: OrganizationFields(name="B"), etag=cast.organization.etag
        )
    )
    assert error.reason == "ETAG_MISMATCH"
    assert world.db.tables.organizations[cast.id].organization.name == "A"


def test_audit_events_are_numbered_per_organization_and_listed_newest_first(
    world: World, cast: Cast
) -> None:
    other = world.organization(cast.owner, "Other")
    for name in ("B", "C"):
        world.clock.advance(timedelta(seconds=1))
        world.services.organizations.update(cast.owner, other.id, lambda: OrganizationFields(name))  # noqa: B023
    for organization_id in (cast.id, other.id):
        seqs = sorted(
            e.seq for e in world.db.tables.audit.values() if e.organization_id == organization_id
        )
        assert seqs == list(range(1, len(seqs) + 1))
    listed, _ = world.services.audit.list(cast.owner, other.id, lambda: PageRequest(limit=100))
    assert [e.seq for e in listed.items] == [3, 2, 1]
    added, _ = world.services.audit.list(
        cast.admin, cast.id, lambda: PageRequest(limit=100), action="member"
    )
    assert [e.action for e in added.items] == ["member.added"] * 3


# --- soft delete and undelete ----------------------------------------------------------


def deleted(world: World, cast: Cast) -> None:
    world.clock.advance(timedelta(hours=1))
    organization = world.services.organizations.delete(cast.owner, cast.id)
    assert organization.state is OrganizationState.DELETED
    assert organization.delete_time == world.clock.now
    assert organization.purge_time == world.clock.now + PURGE_AFTER


def test_a_deleted_organization_is_visible_only_to_owners(world: World, cast: Cast) -> None:
    deleted(world, cast)
    get = world.services.organizations.get
    assert get(cast.owner, organization_id=cast.id).state is OrganizationState.DELETED
    assert get(cast.platform, organization_id=cast.id).state is OrganizationState.DELETED
    for who in (cast.admin, cast.viewer, cast.outsider):
        assert failure(get, who, organization_id=cast.id).reason == "ORGANIZATION_NOT_FOUND"

    def listed(call: Call, show_deleted: bool) -> list[str]:
        page = world.services.organizations.list(
            call, lambda: PageRequest(limit=10), show_deleted=show_deleted
        )
        return [o.id for o in page.items]

    assert listed(cast.owner, show_deleted=False) == []
    assert listed(cast.owner, show_deleted=True) == [cast.id]
    assert listed(cast.admin, show_deleted=True) == []


MUTATIONS: dict[str, Callable[[World, Cast, Call], object]] = {
    "update": lambda world, cast, call: world.services.organizations.update(
        call, cast.id, lambda: OrganizationFields(name="X")
    ),
    "delete": lambda world, cast, call: world.services.organizations.delete(call, cast.id),
    "add member": lambda world, cast, call: world.services.members.add(
        call, cast.id, UserRef(user_id=cast.outsider.caller.user_id), "viewer"
    ),
    "create workspace": lambda world, cast, call: world.services.workspaces.create(
        call, cast.id, WorkspaceFields(name="W")
    ),
    "create invitation": lambda world, cast, call: world.services.invitations.create(
        call, cast.id, email="new@example.com", role="viewer", ttl=lambda: None
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_mutations_of_a_deleted_organization_fail(world: World, cast: Cast, mutation: str) -> None:
    """Owners learn it is deleted; for everyone else it does not exist."""
    deleted(world, cast)
    commits = world.db.commits
    for who, reason in (
        (cast.owner, "ORGANIZATION_DELETED"),
        (cast.platform, "ORGANIZATION_DELETED"),
        (cast.admin, "ORGANIZATION_NOT_FOUND"),
    ):
        assert failure(MUTATIONS[mutation], world, cast, who).reason == reason
    assert world.db.commits == commits


def test_undelete_restores_and_refuses_what_is_not_deleted(world: World, cast: Cast) -> None:
    not_deleted = failure(lambda: world.services.organizations.undelete(cast.owner, cast.id))
    assert not_deleted.reason == "ORGANIZATION_NOT_DELETED"
    deleted(world, cast)
    # The slug stays reserved while the organization may come back.
    taken = failure(world.organization, cast.owner, "X", slug=cast.organization.slug)
    assert taken.reason == "SLUG_TAKEN"
    hidden = failure(world.services.organizations.undelete, cast.admin, cast.id)
    assert hidden.reason == "ORGANIZATION_NOT_FOUND"
    restored = world.services.organizations.undelete(cast.owner, cast.id)
    assert restored.state is OrganizationState.ACTIVE
    assert (restored.delete_time, restored.purge_time) == (None, None)
    assert world.audit_actions(cast.id)[-2:] == ["organization.deleted", "organization.undeleted"]


def test_undelete_after_the_purge_time_finds_nothing(world: World, cast: Cast) -> None:
    deleted(world, cast)
    world.clock.advance(PURGE_AFTER)
    error = failure(lambda: world.services.organizations.undelete(cast.owner, cast.id))
    assert error.reason == "ORGANIZATION_NOT_FOUND"


# --- the budget ------------------------------------------------------------------------


def test_a_spent_budget_refuses_to_commit_and_nothing_is_published(world: World) -> None:
    owner = world.call()
    commits = world.db.commits
    # Enough left to start, less than the commit margin: the client could not get the
    # answer in time, so the work must not be committed.
    almost_spent = Call(owner.caller, Budget(0.01, clock=lambda: 0.0))
    error = failure(
        lambda: world.services.organizations.create(almost_spent, OrganizationFields(name="Late"))
    )
    assert error.reason == "DEADLINE_EXCEEDED"
    assert world.db.commits == commits
    assert world.db.tables.organizations == {}


def test_a_cancelled_call_does_not_start(world: World, cast: Cast) -> None:
    budget = unlimited()
    budget.cancel()
    error = failure(
        lambda: world.services.organizations.update(
            Call(cast.owner.caller, budget), cast.id, lambda: OrganizationFields(name="X")
        )
    )
    assert error.reason == "DEADLINE_EXCEEDED"
    assert world.db.tables.organizations[cast.id].organization.name == "Acme"


def test_a_budget_that_must_not_block_stops_at_the_first_read(world: World, cast: Cast) -> None:
    memory_only = Call(cast.viewer.caller, unlimited().no_io())
    with pytest.raises(WouldBlock):
        world.services.organizations.get(memory_only, organization_id=cast.id)


def test_nothing_is_written_unless_committed(world: World, cast: Cast) -> None:
    """A create that claims its request_id and then fails leaves no trace: the retry with
    the same request_id and a corrected request succeeds."""
    request_id = str(uuid.uuid4())
    taken = failure(
        lambda: world.services.workspaces.create(
            cast.owner, cast.id, WorkspaceFields(name="W", slug="default"), request_id=request_id
        )
    )
    assert taken.reason == "SLUG_TAKEN"
    retried = world.services.workspaces.create(
        cast.owner, cast.id, WorkspaceFields(name="W", slug="other"), request_id=request_id
    )
    assert retried.slug == "other"


# --- provisioning ----------------------------------------------------------------------


def test_a_new_user_gets_a_personal_organization_once(world: World) -> None:
    identities = IdentityService(world.db, world.clock)
    identity = Identity(subject="s-1", email="Zoë@example.com", username="zoë", display_name="Zoë")
    caller = identities.caller_for(identity, unlimited())
    IdentityService(world.db, world.clock).caller_for(identity, unlimited())  # another process
    user, memberships = identities.current_user(Call(caller, unlimited()))
    assert (user.email, user.display_name) == ("Zoë@example.com", "Zoë")
    assert [m.role for m in memberships] == ["owner"]
    (personal,) = (row.organization for row in world.db.tables.organizations.values())
    assert (personal.personal, personal.name, personal.slug) == (True, "Zoë's organization", "zoe")


def test_a_changed_claim_refreshes_the_user(world: World) -> None:
    identities = IdentityService(world.db, world.clock, personal_organizations=False)
    first = identities.caller_for(Identity(subject="s-1", email="a@example.com"), unlimited())
    again = identities.caller_for(Identity(subject="s-1", email="b@example.com"), unlimited())
    assert again.user_id == first.user_id
    assert world.db.tables.users[first.user_id].user.email == "b@example.com"
