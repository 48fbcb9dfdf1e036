"""The read cache (storage/cache.py) on a clock the tests move: TTL, invalidation, the
ticket that keeps a racing loader from storing stale state, and the LRU bounds (of
organizations, and of member pages)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orgservice.domain.models import AccessRecord
from orgservice.domain.models import Member
from orgservice.domain.models import Organization
from orgservice.domain.models import OrganizationState
from orgservice.domain.models import Page
from orgservice.domain.models import User
from orgservice.storage.cache import MISSING
from orgservice.storage.cache import ReadCache
from tests.unit.world import T0


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def organization(organization_id: str, slug: str = "") -> Organization:
    return Organization(
        id=organization_id,
        slug=slug or f"slug-{organization_id}",
        name="Acme",
        description="",
        labels={},
        personal=False,
        state=OrganizationState.ACTIVE,
        member_count=1,
        workspace_count=1,
        create_time=T0,
        update_time=T0,
        delete_time=None,
        purge_time=None,
        etag="e",
    )


ADMIN = AccessRecord(OrganizationState.ACTIVE, "admin", frozenset({"members.list"}))


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def cache(ticks: Ticks) -> ReadCache:
    return ReadCache(5.0, clock=ticks)


def loaded(cache: ReadCache, organization_id: str = "o1") -> None:
    ticket = cache.ticket()
    cache.store_organization(ticket, organization_id, organization(organization_id))
    cache.store_access(ticket, organization_id, "alice", ADMIN)


def test_answers_are_fresh_for_the_ttl(cache: ReadCache, ticks: Ticks) -> None:
    assert cache.organization("o1") is MISSING
    loaded(cache)
    ticks.now += 4.999
    assert cache.organization("o1") == organization("o1")
    assert cache.access("o1", "alice") == ADMIN
    assert cache.access("o1", "bob") is MISSING
    ticks.now += 0.001
    assert cache.organization("o1") is MISSING
    assert cache.access("o1", "alice") is MISSING


def test_absence_is_an_answer_too(cache: ReadCache) -> None:
    ticket = cache.ticket()
    cache.store_organization(ticket, "gone", None)
    cache.store_access(ticket, "o1", "stranger", None)
    assert cache.organization("gone") is None
    assert cache.access("o1", "stranger") is None


def test_invalidate_drops_one_organization(cache: ReadCache) -> None:
    loaded(cache, "o1")
    loaded(cache, "o2")
    cache.invalidate("o1")
    assert cache.organization("o1") is MISSING
    assert cache.access("o1", "alice") is MISSING
    assert cache.organization("o2") == organization("o2")
    cache.invalidate_all()
    assert cache.organization("o2") is MISSING


def test_a_loader_that_read_before_an_invalidation_does_not_store(cache: ReadCache) -> None:
    ticket = cache.ticket()  # the loader reads the database now...
    cache.invalidate("o1")  # ...a commit changes the organization meanwhile...
    cache.store_organization(ticket, "o1", organization("o1"))  # ...then it stores.
    cache.store_access(ticket, "o1", "alice", ADMIN)
    assert cache.organization("o1") is MISSING
    assert cache.access("o1", "alice") is MISSING
    # Other organizations are not affected, and a loader that starts now stores.
    cache.store_organization(ticket, "o2", organization("o2"))
    assert cache.organization("o2") == organization("o2")
    loaded(cache, "o1")
    assert cache.organization("o1") == organization("o1")


def test_a_loader_that_read_before_invalidate_all_does_not_store(cache: ReadCache) -> None:
    ticket = cache.ticket()
    cache.invalidate_all()
    cache.store_organization(ticket, "o9", organization("o9"))
    assert cache.organization("o9") is MISSING


def test_forgotten_invalidations_refuse_every_older_loader(ticks: Ticks) -> None:
    cache = ReadCache(5.0, max_organizations=2, clock=ticks)
    ticket = cache.ticket()
    for name in ("a", "b", "c"):  # more than it remembers
        cache.invalidate(name)
    cache.store_organization(ticket, "z", organization("z"))
    assert cache.organization("z") is MISSING


def test_slugs_resolve_while_the_organization_is_cached_with_them(cache: ReadCache) -> None:
    ticket = cache.ticket()
    cache.store_organization(ticket, "o1", organization("o1", slug="acme"))
    assert cache.organization_id_for_slug("acme") == "o1"
    assert cache.organization_id_for_slug("other") is None
    renamed = replace(organization("o1"), slug="renamed")
    cache.store_organization(cache.ticket(), "o1", renamed)
    assert cache.organization_id_for_slug("acme") is None
    cache.invalidate("o1")
    assert cache.organization_id_for_slug("renamed") is None


def test_the_least_recently_used_organization_goes_first(ticks: Ticks) -> None:
    cache = ReadCache(5.0, max_organizations=2, clock=ticks)
    loaded(cache, "o1")
    loaded(cache, "o2")
    assert cache.access("o1", "alice") == ADMIN  # o1 is used: o2 is now the oldest
    loaded(cache, "o3")
    assert cache.organization("o2") is MISSING
    assert cache.organization("o1") == organization("o1")
    assert cache.organization("o3") == organization("o3")


def test_reading_an_organization_counts_as_a_use(ticks: Ticks) -> None:
    cache = ReadCache(5.0, max_organizations=2, clock=ticks)
    loaded(cache, "o1")
    loaded(cache, "o2")
    assert cache.organization("o1") == organization("o1")
    loaded(cache, "o3")
    assert cache.organization("o1") == organization("o1")
    assert cache.organization("o2") is MISSING


def test_a_ttl_of_zero_disables_the_cache(ticks: Ticks) -> None:
    cache = ReadCache(0, clock=ticks)
    assert not cache.enabled
    loaded(cache)
    assert cache.organization("o1") is MISSING


def test_lookups_are_counted(ticks: Ticks) -> None:
    lookups: list[bool] = []
    cache = ReadCache(5.0, clock=ticks, on_lookup=lookups.append)
    cache.organization("o1")
    loaded(cache)
    cache.organization("o1")
    cache.access("o1", "alice")
    assert lookups == [False, True, True]


# -- member pages ---------------------------------------------------------------------------


def page(*user_ids: str) -> Page[Member]:
    users = [User(u, f"sub-{u}", u, f"{u}@example.com", u.title(), T0) for u in user_ids]
    return Page([Member("o1", user, "viewer", T0, T0) for user in users], len(users))


FIRST = ("", 50, None)  # no role filter, page size 50, from the start


def test_member_pages_are_fresh_for_the_ttl_and_dropped_with_their_organization(
    cache: ReadCache, ticks: Ticks
) -> None:
    cache.store_member_page(cache.ticket(), "o1", FIRST, page("ann", "bob"))
    cache.store_member_page(cache.ticket(), "o2", FIRST, page("cat"))
    assert cache.member_page("o1", FIRST) == page("ann", "bob")
    assert cache.member_page("o1", ("admin", 50, None)) is MISSING
    cache.invalidate("o1")
    assert cache.member_page("o1", FIRST) is MISSING
    assert cache.member_page("o2", FIRST) == page("cat")
    ticks.now += 5.0
    assert cache.member_page("o2", FIRST) is MISSING


def test_a_member_page_read_before_a_change_is_not_stored(cache: ReadCache) -> None:
    ticket = cache.ticket()
    cache.invalidate("o1")  # a change committed while the page was being read
    cache.store_member_page(ticket, "o1", FIRST, page("ann"))
    assert cache.member_page("o1", FIRST) is MISSING


def test_member_pages_have_their_own_lru_bound(ticks: Ticks) -> None:
    cache = ReadCache(5.0, max_member_pages=2, clock=ticks)
    keys = [("", size, None) for size in (1, 2, 3)]
    cache.store_member_page(cache.ticket(), "o1", keys[0], page("ann"))
    cache.store_member_page(cache.ticket(), "o2", keys[1], page("bob"))
    assert cache.member_page("o1", keys[0]) == page("ann")  # o2's page is now the oldest
    cache.store_member_page(cache.ticket(), "o1", keys[2], page("cat"))
    assert cache.member_page("o2", keys[1]) is MISSING
    assert cache.member_page("o1", keys[0]) == page("ann")
    cache.invalidate("o1")
    assert cache.member_page("o1", keys[2]) is MISSING


def test_an_evicted_organization_takes_its_member_pages_along(ticks: Ticks) -> None:
    cache = ReadCache(5.0, max_organizations=1, clock=ticks)
    cache.store_member_page(cache.ticket(), "o1", FIRST, page("ann"))
    loaded(cache, "o2")
    assert cache.member_page("o1", FIRST) is MISSING
