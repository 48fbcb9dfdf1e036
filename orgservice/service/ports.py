"""What use cases need from storage, as Protocols: the SQL implementation lives in
`storage/`, an in-memory one in the unit tests. Use cases import nothing else of storage."""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from orgservice.domain.budget import Budget
from orgservice.domain.models import AccessRecord
from orgservice.domain.models import AuditEvent
from orgservice.domain.models import Domain
from orgservice.domain.models import Identity
from orgservice.domain.models import Invitation
from orgservice.domain.models import InvitationState
from orgservice.domain.models import Member
from orgservice.domain.models import Membership
from orgservice.domain.models import NewOrganization
from orgservice.domain.models import Organization
from orgservice.domain.models import OrganizationFields
from orgservice.domain.models import OrganizationQuery
from orgservice.domain.models import OrganizationState
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.models import PriorRequest
from orgservice.domain.models import Role
from orgservice.domain.models import User
from orgservice.domain.models import UserRef
from orgservice.domain.models import Workspace
from orgservice.domain.models import WorkspaceFields


class Users(Protocol):
    def ensure(self, identity: Identity, now: datetime) -> tuple[User, bool]: ...
    def find(self, ref: UserRef, *, limit: int = 2) -> list[User]: ...
    def get(self, user_id: str) -> User | None: ...


class Organizations(Protocol):
    def create(self, new: NewOrganization, *, commit: bool = False) -> Organization | None:
        """Inserts it with its built-in roles, owner and default workspace under the
        first of its slugs no organization holds; None when every one is taken.
        `commit`: and commits the unit of work if it did (nothing else may follow; on
        PostgreSQL a create that is the whole transaction costs one round trip)."""

    def find_page(self, query: OrganizationQuery, page: PageRequest) -> Page[Organization]: ...
    def get(self, organization_id: str) -> Organization | None: ...
    def id_for_slug(self, slug: str) -> str | None: ...
    def lock(self, organization_id: str) -> OrganizationState | None: ...
    def set_state(
        self,
        organization_id: str,
        state: OrganizationState,
        now: datetime,
        purge_time: datetime | None,
    ) -> None: ...
    def update(self, organization_id: str, fields: OrganizationFields, now: datetime) -> None: ...


class Memberships(Protocol):
    def add(self, organization_id: str, user_id: str, role: str, now: datetime) -> None: ...
    def count_with_role(self, organization_id: str, role: str) -> int: ...
    def find_page(
        self,
        organization_id: str,
        role: str,
        page: PageRequest,
        *,
        total: int | None,
        query: str = "",
    ) -> Page[Member]: ...
    def get(self, organization_id: str, user_id: str) -> Member | None: ...
    def has_member_with_email(self, organization_id: str, email: str) -> bool: ...
    def of_user(self, user_id: str) -> list[Membership]: ...
    def permissions_in(
        self, user_id: str, organization_ids: Collection[str]
    ) -> dict[str, frozenset[str]]: ...
    def remove(self, organization_id: str, user_id: str) -> None: ...
    def set_role(self, organization_id: str, user_id: str, role: str, now: datetime) -> None: ...


class Roles(Protocol):
    def add(
        self,
        organization_id: str,
        name: str,
        description: str,
        permissions: Sequence[str],
        now: datetime,
    ) -> Role: ...
    def delete(self, organization_id: str, name: str) -> None: ...
    def find_page(self, organization_id: str, page: PageRequest) -> Page[Role]: ...
    def get(self, organization_id: str, name: str) -> Role | None: ...
    def update(
        self,
        organization_id: str,
        name: str,
        *,
        description: str | None,
        permissions: Sequence[str] | None,
        now: datetime,
    ) -> Role: ...


class Workspaces(Protocol):
    def add(
        self,
        *,
        organization_id: str,
        workspace_id: str,
        slug: str,
        name: str,
        description: str,
        now: datetime,
    ) -> bool: ...
    def delete(self, organization_id: str, workspace_id: str) -> None: ...
    def exists(self, organization_id: str, workspace_id: str) -> bool: ...
    def find_page(
        self, organization_id: str, name_filter: str, page: PageRequest, *, total: int | None
    ) -> Page[Workspace]: ...
    def get(self, organization_id: str, workspace_id: str) -> Workspace | None: ...
    def update(
        self, organization_id: str, workspace_id: str, fields: WorkspaceFields, now: datetime
    ) -> None: ...


class Invitations(Protocol):
    def add(self, invitation: Invitation, token_hash: str) -> None:
        """Stores a pending invitation; raises InvitationPending when its email has one."""

    def count_pending_with_role(self, organization_id: str, role: str, now: datetime) -> int: ...
    def find_page(
        self, organization_id: str, state: InvitationState | None, now: datetime, page: PageRequest
    ) -> Page[Invitation]: ...
    def find_pending_for_email(
        self, email: str, now: datetime, page: PageRequest
    ) -> Page[Invitation]: ...
    def get(self, invitation_id: str, now: datetime) -> Invitation | None: ...
    def get_by_token_hash(self, token_hash: str, now: datetime) -> Invitation | None: ...
    def stored_pending_for(
        self, organization_id: str, email: str, now: datetime
    ) -> Invitation | None: ...
    def update(
        self,
        organization_id: str,
        invitation_id: str,
        now: datetime,
        *,
        state: InvitationState | None = None,
        role: str | None = None,
        expire_time: datetime | None = None,
        token_hash: str | None = None,
    ) -> Invitation: ...


class Audit(Protocol):
    def find_page(
        self, organization_id: str, action: str, page: PageRequest
    ) -> Page[AuditEvent]: ...
    def record(self, event: AuditEvent) -> None:
        """Adds the event with the organization's next sequence number (`seq` is
        ignored); the caller holds the organization row lock."""


class Domains(Protocol):
    def add(self, organization_id: str, name: str, token: str, now: datetime) -> bool: ...
    def count(self, organization_id: str) -> int: ...
    def delete(self, organization_id: str, name: str) -> None: ...
    def get(self, organization_id: str, name: str) -> Domain | None: ...
    def holder(self, name: str) -> str | None: ...
    def of_organization(self, organization_id: str) -> list[Domain]: ...
    def verify(self, organization_id: str, name: str, now: datetime) -> bool: ...


class AutoJoins(Protocol):
    def candidate(self, domain: str, user_id: str) -> str | None: ...
    def record(self, organization_id: str, user_id: str, now: datetime) -> bool: ...


class Feed(Protocol):
    def after(self, organization_id: str, seq: int, limit: int) -> list[AuditEvent]: ...
    def after_position(self, position: int, limit: int) -> list[AuditEvent]: ...
    def heads(self, organization_ids: Sequence[str]) -> dict[str, int]: ...
    def newest_position(self) -> int: ...
    def place(self, limit: int) -> int | None: ...
    def unplaced(self) -> bool: ...


class Idempotency(Protocol):
    def claim(
        self, user_id: str, request_id: str, request: PriorRequest, now: datetime, since: datetime
    ) -> PriorRequest | None: ...


class UnitOfWork(Protocol):
    def access(
        self, organization_id: str, user_id: str, *, lock: bool = False
    ) -> AccessRecord | None:
        """The user's standing in the organization (None: it does not exist); `lock`
        takes the organization row lock that every mutation holds."""

    @property
    def audit(self) -> Audit: ...
    @property
    def auto_joins(self) -> AutoJoins: ...
    def commit(self) -> None: ...
    @property
    def domains(self) -> Domains: ...
    @property
    def feed(self) -> Feed: ...
    @property
    def idempotency(self) -> Idempotency: ...
    @property
    def invitations(self) -> Invitations: ...
    @property
    def memberships(self) -> Memberships: ...
    def member_page(
        self, organization_id: str, role: str, page: PageRequest, *, total: int | None
    ) -> Page[Member]:
        """A page of the organization's members (of `role` when set; no search), from
        the read cache when the unit of work may use it."""

    def organization(self, organization_id: str) -> Organization | None:
        """The organization, from the read cache when the unit of work may use it."""

    def organization_id_for_slug(self, slug: str) -> str | None: ...
    def organization_seen_by(
        self, organization_id: str, user_id: str
    ) -> tuple[Organization | None, AccessRecord | None]:
        """The organization and the user's standing in it (both None when it does not
        exist), from the read cache or in one query."""

    @property
    def organizations(self) -> Organizations: ...
    @property
    def roles(self) -> Roles: ...
    @property
    def users(self) -> Users: ...
    @property
    def workspaces(self) -> Workspaces: ...


class Database(Protocol):
    def snapshot(
        self, budget: Budget, *, cached: bool = True
    ) -> AbstractContextManager[UnitOfWork]: ...
    def transaction(self, budget: Budget) -> AbstractContextManager[UnitOfWork]: ...


class TxtResolver(Protocol):
    """DNS TXT lookups for domain verification."""

    def txt_strings(self, name: str, timeout: float) -> list[str]:
        """The strings of the TXT records at `name` (each record's strings also joined,
        as long values are split); empty when the name or its TXT records do not exist.
        Raises DnsUnavailable when the resolver fails or does not answer within
        `timeout` seconds."""
        ...
