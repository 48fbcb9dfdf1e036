"""The services over in-memory storage, a clock that stands still, and the people the
use-case tests need."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import TypeVar

import pytest

from orgservice.api.feed_cursors import FeedCursors
from orgservice.api.feed_hub import FeedHub
from orgservice.api.page_tokens import PageTokens
from orgservice.api.rpc_base import Feed
from orgservice.api.servicer import OrganizationServicer
from orgservice.domain.budget import unlimited
from orgservice.domain.errors import DomainError
from orgservice.domain.models import Call
from orgservice.domain.models import Cursor
from orgservice.domain.models import Identity
from orgservice.domain.models import Organization
from orgservice.domain.models import OrganizationFields
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.models import UserRef
from orgservice.service.registry import Services
from tests.unit.fake_resolver import FakeTxtResolver
from tests.unit.fake_storage import FakeDatabase

T = TypeVar("T")
T0 = datetime(2030, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)


class StoppedClock:
    """The service's clock (`service.clock.Clock`): it moves only when a test moves it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass(frozen=True)
class Cast:
    """An organization and a caller of every kind."""

    organization: Organization
    owner: Call
    admin: Call
    developer: Call
    viewer: Call
    outsider: Call
    platform: Call

    @property
    def id(self) -> str:
        return self.organization.id


class World:
    def __init__(self) -> None:
        self.clock = StoppedClock()
        self.db = FakeDatabase()
        self.dns = FakeTxtResolver()
        self.services = Services.build(
            self.db, resolver=self.dns, clock=self.clock, personal_organizations=False
        )
        secret = b"unit-test-secret"
        feed = Feed(FeedCursors(secret), FeedHub(self._no_heads, poll_seconds=1.0))
        self.rpcs = OrganizationServicer(self.services, PageTokens(secret), feed)
        self._numbers = itertools.count(1)

    @staticmethod
    async def _no_heads(_organization_ids: list[str]) -> dict[str, int]:
        return {}  # the change feed's streams are not unit-tested here

    def call(self, name: str = "", *, email: str = "", verified: bool = True) -> Call:
        """A new user, provisioned as on its first call."""
        return self._call(name, email=email, verified=verified, platform=False)

    def platform_call(self) -> Call:
        """An internal service (token scope orgs:admin)."""
        return self._call("", email="", verified=False, platform=True)

    def organization(self, owner: Call, name: str = "Acme", slug: str = "") -> Organization:
        return self.services.organizations.create(
            owner, OrganizationFields(name=name, slug=slug or None)
        )

    def member(self, organization_id: str, role: str, *, added_by: Call) -> Call:
        """A new user, added to the organization with `role`."""
        call = self.call()
        self.services.members.add(
            added_by, organization_id, UserRef(user_id=call.caller.user_id), role
        )
        return call

    def cast(self) -> Cast:
        owner = self.call("owner")
        organization = self.organization(owner)

        def member(role: str) -> Call:
            return self.member(organization.id, role, added_by=owner)

        return Cast(
            organization=organization,
            owner=owner,
            admin=member("admin"),
            developer=member("developer"),
            viewer=member("viewer"),
            outsider=self.call("outsider"),
            platform=self.platform_call(),
        )

    def audit_actions(self, organization_id: str) -> list[str]:
        """The committed audit events of an organization, oldest first."""
        events = sorted(
            (e for e in self.db.tables.audit.values() if e.organization_id == organization_id),
            key=lambda e: e.seq,
        )
        return [e.action for e in events]

    def _call(self, name: str, *, email: str, verified: bool, platform: bool) -> Call:
        name = name or f"user{next(self._numbers)}"
        identity = Identity(
            subject=f"subject-{name}",
            email=email if email or platform else f"{name}@example.com",
            email_verified=verified,
            username=name,
            display_name=name.title(),
            is_platform=platform,
        )
        caller = self.services.identities.caller_for(identity, unlimited())
        return Call(caller, unlimited())


def pages(
    list_page: Callable[[Callable[[], PageRequest]], Page[T]], *, limit: int
) -> list[Page[T]]:
    """Every page of a list, following the cursors."""
    fetched: list[Page[T]] = []
    after: Cursor | None = None
    while True:
        request = PageRequest(limit=limit, after=after)
        fetched.append(list_page(lambda: request))  # noqa: B023 (called at once)
        after = fetched[-1].next_cursor
        if after is None:
            return fetched


def failure(action: Callable[..., object], *args: Any, **kwargs: Any) -> DomainError:
    """The domain error `action(*args, **kwargs)` raises."""
    with pytest.raises(DomainError) as caught:
        action(*args, **kwargs)
    return caught.value
