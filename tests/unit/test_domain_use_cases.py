"""Domain and membership-policy use cases over in-memory storage and a fake resolver:
what VerifyDomain asks DNS (and when it does not ask), how long it lets DNS take, and
auto-join's rules. The real DNS path is covered by tests/integration/test_domains.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from orgservice.domain.budget import Budget
from orgservice.domain.errors import Unavailable
from orgservice.domain.models import Call
from orgservice.domain.models import DomainState
from orgservice.domain.models import OrganizationFields
from orgservice.domain.models import OrganizationSettings
from orgservice.domain.models import SettingsChanges
from orgservice.service.domains import DNS_TIMEOUT_SECONDS
from tests.unit.world import Cast
from tests.unit.world import World
from tests.unit.world import failure


def claim(world: World, cast: Cast, name: str = "example.com") -> str:
    return world.services.domains.create(cast.owner, cast.id, name).name


def publish(world: World, cast: Cast, name: str) -> None:
    domain = world.db.tables.domains[cast.id, name]
    world.dns.records[domain.record_name] = ["v=spf1 -all", domain.record_value]


def set_settings(world: World, cast: Cast, **settings: Any) -> None:
    changes = SettingsChanges(OrganizationSettings(**settings), frozenset(settings))
    world.services.organizations.update(
        cast.owner, cast.id, lambda: OrganizationFields(settings=changes)
    )


def test_verify_asks_for_the_challenge_record_within_two_seconds(world: World, cast: Cast) -> None:
    name = claim(world, cast)
    publish(world, cast, name)
    verified = world.services.domains.verify(cast.admin, cast.id, name)
    assert (verified.state, verified.verify_time) == (DomainState.VERIFIED, world.clock.now)
    (timeout,) = world.dns.timeouts
    assert 0 < timeout <= DNS_TIMEOUT_SECONDS
    # Verified already: answered without asking again.
    world.services.domains.verify(cast.owner, cast.id, name)
    assert len(world.dns.timeouts) == 1
    assert world.audit_actions(cast.id)[-2:] == ["domain.created", "domain.verified"]


def test_a_short_budget_shortens_the_wait(world: World, cast: Cast) -> None:
    name = claim(world, cast)
    short = replace(cast.owner, budget=Budget(0.5))
    failure(world.services.domains.verify, short, cast.id, name)  # not verified: no record
    assert world.dns.timeouts[0] < 0.5


@pytest.mark.parametrize(
    ("records", "reason"),
    [([], "DOMAIN_NOT_VERIFIED"), (["orgservice-verification=other"], "DOMAIN_NOT_VERIFIED")],
)
def test_not_verified(world: World, cast: Cast, records: list[str], reason: str) -> None:
    name = claim(world, cast)
    world.dns.records[f"_orgservice-challenge.{name}"] = records
    assert failure(world.services.domains.verify, cast.owner, cast.id, name).reason == reason
    assert world.db.tables.domains[cast.id, name].state is DomainState.PENDING


def test_dns_failures_are_reported_and_change_nothing(world: World, cast: Cast) -> None:
    name = claim(world, cast)
    world.dns.failing.add(f"_orgservice-challenge.{name}")
    error = failure(world.services.domains.verify, cast.owner, cast.id, name)
    assert isinstance(error, Unavailable)
    assert error.reason == "DNS_UNAVAILABLE"
    assert world.db.tables.domains[cast.id, name].state is DomainState.PENDING


@pytest.mark.parametrize("who", ["viewer", "developer", "outsider"])
def test_callers_without_domains_manage_cause_no_lookup(world: World, cast: Cast, who: str) -> None:
    name = claim(world, cast)
    caller: Call = getattr(cast, who)
    error = failure(world.services.domains.verify, caller, cast.id, name)
    expected = "ORGANIZATION_NOT_FOUND" if who == "outsider" else "PERMISSION_DENIED"
    assert error.reason == expected
    assert world.dns.timeouts == []


def test_a_name_verified_elsewhere_is_taken_without_a_lookup(world: World, cast: Cast) -> None:
    name = claim(world, cast)
    publish(world, cast, name)
    world.services.domains.verify(cast.owner, cast.id, name)
    other = world.cast()
    claim(world, other, name)
    error = failure(world.services.domains.verify, other.owner, other.id, name)
    assert error.reason == "DOMAIN_TAKEN"
    assert len(world.dns.timeouts) == 1  # only the first organization's lookup


# --- auto-join ----------------------------------------------------------------------------


@pytest.fixture
def joinable(world: World, cast: Cast) -> Cast:
    name = claim(world, cast, "acme.example")
    publish(world, cast, name)
    world.services.domains.verify(cast.owner, cast.id, name)
    set_settings(world, cast, auto_join_role="developer")
    return cast


def role_in(world: World, cast: Cast, call: Call) -> str | None:
    row = world.db.tables.memberships.get((cast.id, call.caller.user_id))
    return row.role if row else None


def test_provisioning_joins_once(world: World, joinable: Cast) -> None:
    user = world.call(email="dana@ACME.example")
    assert role_in(world, joinable, user) == "developer"
    world.services.members.remove(user, joinable.id, user.caller.user_id)
    world.services.identities.current_user(user)
    assert role_in(world, joinable, user) is None
    assert world.audit_actions(joinable.id).count("member.auto_joined") == 1


def test_unverified_emails_and_subdomains_do_not_join(world: World, joinable: Cast) -> None:
    for user in (
        world.call(email="eve@acme.example", verified=False),
        world.call(email="eve@eu.acme.example"),
    ):
        world.services.identities.current_user(user)
        assert role_in(world, joinable, user) is None


def test_a_full_organization_is_skipped_until_a_seat_frees(world: World, joinable: Cast) -> None:
    set_settings(world, joinable, max_members=joinable.organization.member_count + 4)
    user = world.call(email="finn@acme.example")  # fills the last seat
    waiting = world.call(email="gus@acme.example")
    assert role_in(world, joinable, user) == "developer"
    assert role_in(world, joinable, waiting) is None
    world.services.members.remove(user, joinable.id, user.caller.user_id)
    world.services.identities.current_user(waiting)
    assert role_in(world, joinable, waiting) == "developer"
