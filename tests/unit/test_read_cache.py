"""The read cache (storage/cache.py) on a clock the tests move: TTL, invalidation, the
ticket that keeps a racing loader from storing stale state, and the LRU bound."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orgservice.domain.models import AccessRecord
from orgservice.domain.models import Organization
from orgservice.domain.models import OrganizationState
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
