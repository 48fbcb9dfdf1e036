"""The unit of work: one transaction (or one snapshot of reads) and its repositories."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

from sqlalchemy import Engine

from orgservice.domain.budget import Budget
from orgservice.domain.models import AccessRecord
from orgservice.domain.models import Member
from orgservice.domain.models import Organization
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.storage.audit import AuditRepository
from orgservice.storage.auto_joins import AutoJoinRepository
from orgservice.storage.cache import Missing
from orgservice.storage.cache import ReadCache
from orgservice.storage.domains import DomainRepository
from orgservice.storage.feed import FeedRepository
from orgservice.storage.idempotency import IdempotencyRepository
from orgservice.storage.invitations import InvitationRepository
from orgservice.storage.member_search import MemberSearchIndex
from orgservice.storage.memberships import MembershipRepository
from orgservice.storage.organizations import OrganizationRepository
from orgservice.storage.roles import RoleRepository
from orgservice.storage.sql import Sql
from orgservice.storage.sql import count_checkouts
from orgservice.storage.sqlite_write_lock import SqliteWriteLock
from orgservice.storage.users import UserRepository
from orgservice.storage.watchdog import Watchdog
from orgservice.storage.workspaces import WorkspaceRepository


class SqlUnitOfWork:
    """Repositories over one connection. Nothing is written unless `commit()` is called.

    In a snapshot, `access()` and `organization()` answer from the read cache when it
    has a fresh answer; in a transaction they always read (and lock) the database.
    """

    def __init__(self, sql: Sql, cache: ReadCache | None) -> None:
        self.sql = sql
        self._cache = cache

    # Built on first use: most units of work need one or two of them.

    @cached_property
    def users(self) -> UserRepository:
        return UserRepository(self.sql, self._search)

    @cached_property
    def organizations(self) -> OrganizationRepository:
        return OrganizationRepository(self.sql, self._search)

    @cached_property
    def memberships(self) -> MembershipRepository:
        return MembershipRepository(self.sql, self.organizations, self._search)

    @cached_property
    def _search(self) -> MemberSearchIndex:
        # One per transaction, shared: it remembers the profiles it has locked.
        return MemberSearchIndex(self.sql)

    @cached_property
    def roles(self) -> RoleRepository:
        return RoleRepository(self.sql)

    @cached_property
    def workspaces(self) -> WorkspaceRepository:
        return WorkspaceRepository(self.sql, self.organizations)

    @cached_property
    def invitations(self) -> InvitationRepository:
        return InvitationRepository(self.sql)

    @cached_property
    def audit(self) -> AuditRepository:
        return AuditRepository(self.sql)

    @cached_property
    def feed(self) -> FeedRepository:
        return FeedRepository(self.sql)

    @cached_property
    def idempotency(self) -> IdempotencyRepository:
        return IdempotencyRepository(self.sql)

    @cached_property
    def domains(self) -> DomainRepository:
        return DomainRepository(self.sql)

    @cached_property
    def auto_joins(self) -> AutoJoinRepository:
        return AutoJoinRepository(self.sql)

    def access(
        self, organization_id: str, user_id: str, *, lock: bool = False
    ) -> AccessRecord | None:
        if lock or self._cache is None:
            return self.memberships.access(organization_id, user_id, lock=lock)
        cached = self._cache.access(organization_id, user_id)
        if not isinstance(cached, Missing):
            return cached
        ticket = self._cache.ticket()
        record = self.memberships.access(organization_id, user_id)
        self._cache.store_access(ticket, organization_id, user_id, record)
        return record

    def organization(self, organization_id: str) -> Organization | None:
        if self._cache is None:
            return self.organizations.get(organization_id)
        cached = self._cache.organization(organization_id)
        if not isinstance(cached, Missing):
            return cached
        ticket = self._cache.ticket()
        organization = self.organizations.get(organization_id)
        self._cache.store_organization(ticket, organization_id, organization)
        return organization

    def member_page(
        self, organization_id: str, role: str, page: PageRequest, *, total: int | None
    ) -> Page[Member]:
        """A page of the organization's members, of one role when `role` is set
        (MembershipRepository.find_page, without a search)."""
        if self._cache is None:
            return self.memberships.find_page(organization_id, role, page, total=total)
        key = (role, page.limit, page.after)
        cached = self._cache.member_page(organization_id, key)
        if not isinstance(cached, Missing):
            return cached
        ticket = self._cache.ticket()
        found = self.memberships.find_page(organization_id, role, page, total=total)
        self._cache.store_member_page(ticket, organization_id, key, found)
        return found

    def organization_seen_by(
        self, organization_id: str, user_id: str
    ) -> tuple[Organization | None, AccessRecord | None]:
        """The organization and the user's standing in it (both None: it does not
        exist); one query when the cache cannot answer."""
        if self._cache is not None:
            organization = self._cache.organization(organization_id)
            record = self._cache.access(organization_id, user_id)
            if not isinstance(organization, Missing) and not isinstance(record, Missing):
                return organization, record
        ticket = self._cache.ticket() if self._cache is not None else 0
        found = self.memberships.organization_seen_by(organization_id, user_id)
        organization, record = found if found is not None else (None, None)
        if self._cache is not None:
            self._cache.store_organization(ticket, organization_id, organization)
            self._cache.store_access(ticket, organization_id, user_id, record)
        return organization, record

    def organization_id_for_slug(self, slug: str) -> str | None:
        if self._cache is not None:
            cached = self._cache.organization_id_for_slug(slug)
            if cached is not None:
                return cached
        return self.organizations.id_for_slug(slug)

    def commit(self) -> None:
        self.sql.commit()


class SqlDatabase:
    """Hands out units of work over one engine; owns the read cache and the watchdog.
    `on_commit(organization_id)`, when set, hears of every organization a transaction
    changed, after the cache has dropped it."""

    def __init__(self, engine: Engine, cache: ReadCache | None = None) -> None:
        self.engine = engine
        self.cache = cache
        self.on_commit: Callable[[str], None] | None = None
        self.watchdog = Watchdog()
        self._write_lock = SqliteWriteLock() if engine.dialect.name == "sqlite" else None
        count_checkouts(engine)

    @contextmanager
    def transaction(self, budget: Budget) -> Iterator[SqlUnitOfWork]:
        """A read-write unit of work: rolled back unless `commit()` is called."""
        sql = Sql(self.engine, budget, self.watchdog, writes=True, write_lock=self._write_lock)
        try:
            yield SqlUnitOfWork(sql, None)
        finally:
            sql.close()
        for organization_id in sql.committed_organizations():
            if self.cache is not None:
                self.cache.invalidate(organization_id)
            if self.on_commit is not None:
                self.on_commit(organization_id)

    @contextmanager
    def snapshot(self, budget: Budget, *, cached: bool = True) -> Iterator[SqlUnitOfWork]:
        """Reads, each statement on its own (no transaction bracket: one round trip per
        single-statement read); `cached` lets them answer from the read cache."""
        sql = Sql(self.engine, budget, self.watchdog, writes=False)
        use_cache = self.cache if cached and self.cache is not None and self.cache.enabled else None
        try:
            yield SqlUnitOfWork(sql, use_cache)
        finally:
            sql.close()
