"""The per-process read cache: organizations, who holds which role in them, and the
pages of their member lists.

Reads (Get/List RPCs, CheckPermission) may answer from here for up to `ttl` seconds.
Every committed change drops its organization at once in the process that made it and,
through a PostgreSQL notification, in the others; the TTL bounds staleness whatever
happens to notifications (polling, in effect, where there are none).

A read that raced a change must not put the old state back: a loader takes a ticket
before it reads the database and stores its result only if the organization was not
invalidated since.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Hashable
from dataclasses import dataclass
from dataclasses import field

from orgservice.domain.models import AccessRecord
from orgservice.domain.models import Member
from orgservice.domain.models import Organization
from orgservice.domain.models import Page

DEFAULT_MAX_ORGANIZATIONS = 100_000
_MAX_MEMBERS_PER_ORGANIZATION = 10_000
# Member pages are the bulky entries (about 1 KB a member): their own LRU bounds them.
DEFAULT_MAX_MEMBER_PAGES = 2_000


class Missing:
    pass


MISSING = Missing()


@dataclass
class _Entry:
    organization: Organization | Missing | None = MISSING
    organization_time: float = 0.0
    access: dict[str, tuple[float, AccessRecord | None]] = field(default_factory=dict)
    member_pages: set[Hashable] = field(default_factory=set)  # keys into ReadCache._pages


class ReadCache:
    def __init__(
        self,
        ttl: float,
        *,
        max_organizations: int = DEFAULT_MAX_ORGANIZATIONS,
        max_member_pages: int = DEFAULT_MAX_MEMBER_PAGES,
        clock: Callable[[], float] = time.monotonic,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self.ttl = ttl
        self._max = max_organizations
        self._clock = clock
        self._on_lookup = on_lookup
        self._max_pages = max_member_pages
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pages: OrderedDict[tuple[str, Hashable], tuple[float, Page[Member]]] = OrderedDict()
        # slug -> organization id; trusted only while that organization's cached entry
        # still has the slug, so it needs no invalidation of its own.
        self._slugs: dict[str, str] = {}
        self._lock = threading.Lock()
        self._invalidations = 0
        self._invalidated_at: dict[str, int] = {}
        self._everything_invalidated_at = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def ticket(self) -> int:
        """Take before reading the database; pass to `store_*`."""
        return self._invalidations

    def access(self, organization_id: str, user_id: str) -> AccessRecord | Missing | None:
        with self._lock:
            entry = self._entries.get(organization_id)
            found = entry.access.get(user_id) if entry else None
            fresh = found is not None and self._clock() - found[0] < self.ttl
            if fresh and entry is not None:
                self._entries.move_to_end(organization_id)
        self._count(fresh)
        return found[1] if fresh and found is not None else MISSING

    def organization(self, organization_id: str) -> Organization | Missing | None:
        with self._lock:
            entry = self._entries.get(organization_id)
            fresh = (
                entry is not None
                and entry.organization is not MISSING
                and self._clock() - entry.organization_time < self.ttl
            )
            if fresh:
                self._entries.move_to_end(organization_id)
        self._count(fresh)
        return entry.organization if fresh and entry is not None else MISSING

    def member_page(self, organization_id: str, key: Hashable) -> Page[Member] | Missing:
        """A page of the organization's members; `key` says which (filter, position,
        size)."""
        with self._lock:
            found = self._pages.get((organization_id, key))
            fresh = found is not None and self._clock() - found[0] < self.ttl
            if fresh:
                self._pages.move_to_end((organization_id, key))
        self._count(fresh)
        return found[1] if fresh and found is not None else MISSING

    def organization_id_for_slug(self, slug: str) -> str | None:
        organization_id = self._slugs.get(slug)
        if organization_id is None:
            return None
        cached = self.organization(organization_id)
        if isinstance(cached, Organization) and cached.slug == slug:
            return organization_id
        return None

    def store_access(
        self, ticket: int, organization_id: str, user_id: str, record: AccessRecord | None
    ) -> None:
        with self._lock:
            entry = self._entry_to_store(ticket, organization_id)
            if entry is not None and len(entry.access) < _MAX_MEMBERS_PER_ORGANIZATION:
                entry.access[user_id] = (self._clock(), record)

    def store_organization(
        self, ticket: int, organization_id: str, organization: Organization | None
    ) -> None:
        with self._lock:
            entry = self._entry_to_store(ticket, organization_id)
            if entry is not None:
                entry.organization = organization
                entry.organization_time = self._clock()
                if organization is not None:
                    if len(self._slugs) >= self._max:
                        self._slugs.clear()
                    self._slugs[organization.slug] = organization_id

    def store_member_page(
        self, ticket: int, organization_id: str, key: Hashable, page: Page[Member]
    ) -> None:
        with self._lock:
            entry = self._entry_to_store(ticket, organization_id)
            if entry is None:
                return
            entry.member_pages.add(key)
            self._pages[organization_id, key] = (self._clock(), page)
            self._pages.move_to_end((organization_id, key))
            while len(self._pages) > self._max_pages:
                (evicted_organization, evicted_key), _ = self._pages.popitem(last=False)
                owner = self._entries.get(evicted_organization)
                if owner is not None:
                    owner.member_pages.discard(evicted_key)

    def invalidate(self, organization_id: str) -> None:
        with self._lock:
            self._invalidations += 1
            self._invalidated_at[organization_id] = self._invalidations
            self._drop_entry(organization_id)
            if len(self._invalidated_at) > self._max:
                self._forget_old_invalidations()

    def invalidate_all(self) -> None:
        with self._lock:
            self._invalidations += 1
            self._everything_invalidated_at = self._invalidations
            self._invalidated_at.clear()
            self._entries.clear()
            self._pages.clear()
            self._slugs.clear()

    def _entry_to_store(self, ticket: int, organization_id: str) -> _Entry | None:
        if not self.enabled or ticket < self._everything_invalidated_at:
            return None
        if ticket < self._invalidated_at.get(organization_id, 0):
            return None
        entry = self._entries.get(organization_id)
        if entry is None:
            entry = self._entries[organization_id] = _Entry()
            if len(self._entries) > self._max:
                self._drop_entry(next(iter(self._entries)))
        else:
            self._entries.move_to_end(organization_id)
        return entry

    def _drop_entry(self, organization_id: str) -> None:
        entry = self._entries.pop(organization_id, None)
        if entry is not None:
            for key in entry.member_pages:
                self._pages.pop((organization_id, key), None)

    def _forget_old_invalidations(self) -> None:
        # A loader that started before every remembered invalidation is refused as a
        # whole, which keeps this bookkeeping bounded.
        self._everything_invalidated_at = self._invalidations
        self._invalidated_at.clear()

    def _count(self, hit: bool) -> None:
        if self._on_lookup is not None:
            self._on_lookup(hit)
