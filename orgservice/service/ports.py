"""What use cases need from storage, as Protocols: the SQL implementation lives in
`storage/`, an in-memory one in the unit tests. Use cases import nothing else of storage."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from orgservice.domain.budget import Budget
from orgservice.domain.models import (
    AccessRecord,
    AuditEvent,
    Domain,
    Identity,
    Invitation,
    InvitationState,
    Member,
    Membership,
    NewOrganization,
    Organization,
    OrganizationFields,
    OrganizationQuery,
    OrganizationState,
    Page,
    PageRequest,
    PriorRequest,
    Role,
    User,
    UserRef,
    Workspace,
    WorkspaceFields,
)


class Users(Protocol):
    def get(self, user_id: str) -> User | None: ...
    def find(self, ref: UserRef, *, limit: int = 2) -> list[User]: ...
    def ensure(self, identity: Identity, now: datetime) -> tuple[User, bool]: ...


class Organizations(Protocol):
    def create(self, new: NewOrganization) -> Organization | None:
        """Inserts it with its built-in roles, owner and default workspace; None when
        the slug is taken."""

    def id_for_slug(self, slug: str) -> str | None: ...
    def get(self, organization_id: str) -> Organization | None: ...
    def lock(self, organization_id: str) -> OrganizationState | None: ...
    def update(self, organization_id: str, fields: OrganizationFields, now: datetime) -> None: ...
    def set_state(
        self,
        organization_id: str,
        state: OrganizationState,
        now: datetime,
        purge_time: datetime | None,
    ) -> None: ...
    def find_page(self, query: OrganizationQuery, page: PageRequest) -> Page[Organization]: ...


class Memberships(Protocol):
    def add(self, organization_id: str, user_id: str, role: str, now: datetime) -> None: ...
    def get(self, organization_id: str, user_id: str) -> Member | None: ...
    def find_page(
        self,
        organization_id: str,
        role: str,
        page: PageRequest,
        *,
        total: int | None,
        query: str = "",
    ) -> Page[Member]: ...
    def count_with_role(self, organization_id: str, role: str) -> int: ...
    def has_member_with_email(self, organization_id: str, email: str) -> bool: ...
    def set_role(self, organization_id: str, user_id: str, role: str, now: datetime) -> None: ...
    def remove(self, organization_id: str, user_id: str) -> None: ...
    def of_user(self, user_id: str) -> list[Membership]: ...
    def permissions_in(
        self, user_id: str, organization_ids: Collection[str]
    ) -> dict[str, frozenset[str]]: ...


class Roles(Protocol):
    def add(
        self,
        organization_id: str,
        name: str,
        description: str,
        permissions: Sequence[str],
        now: datetime,
    ) -> Role: ...
    def get(self, organization_id: str, name: str) -> Role | None: ...
    def find_page(self, organization_id: str, page: PageRequest) -> Page[Role]: ...
    def update(
        self,
        organization_id: str,
        name: str,
        *,
        description: str | None,
        permissions: Sequence[str] | None,
        now: datetime,
    ) -> Role: ...
    def delete(self, organization_id: str, name: str) -> None: ...


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
    def exists(self, organization_id: str, workspace_id: str) -> bool: ...
    def get(self, organization_id: str, workspace_id: str) -> Workspace | None: ...
    def find_page(
        self, organization_id: str, name_filter: str, page: PageRequest, *, total: int | None
    ) -> Page[Workspace]: ...
    def update(
        self, organization_id: str, workspace_id: str, fields: WorkspaceFields, now: datetime
    ) -> None: ...
    def delete(self, organization_id: str, workspace_id: str) -> None: ...


class Invitations(Protocol):
    def add(
        self,
        *,
        organization_id: str,
        invitation_id: str,
        email: str,
        role: str,
        inviter_user_id: str,
        token_hash: str,
        now: datetime,
        expire_time: datetime,
    ) -> None: ...
    def get(self, invitation_id: str, now: datetime) -> Invitation | None: ...
    def get_by_token_hash(self, token_hash: str, now: datetime) -> Invitation | None: ...
    def stored_pending_for(
        self, organization_id: str, email: str, now: datetime
    ) -> Invitation | None: ...
    def find_page(
        self,
        organization_id: str,
        state: InvitationState | None,
        now: datetime,
        page: PageRequest,
    ) -> Page[Invitation]: ...
    def find_pending_for_email(
        self, email: str, now: datetime, page: PageRequest
    ) -> Page[Invitation]: ...
    def count_pending_with_role(self, organization_id: str, role: str, now: datetime) -> int: ...
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
    def record(
        self,
        *,
        organization_id: str,
        actor_user_id: str,
        action: str,
        target_type: str,
        target_id: str,
        now: datetime,
        details: Mapping[str, str] | None = None,
    ) -> None: ...
    def find_page(
        self, organization_id: str, action: str, page: PageRequest
    ) -> Page[AuditEvent]: ...


class Domains(Protocol):
    def add(self, organization_id: str, name: str, token: str, now: datetime) -> bool: ...
    def count(self, organization_id: str) -> int: ...
    def get(self, organization_id: str, name: str) -> Domain | None: ...
    def of_organization(self, organization_id: str) -> list[Domain]: ...
    def holder(self, name: str) -> str | None: ...
    def verify(self, organization_id: str, name: str, now: datetime) -> bool: ...
    def delete(self, organization_id: str, name: str) -> None: ...


class AutoJoins(Protocol):
    def candidate(self, domain: str, user_id: str) -> str | None: ...
    def record(self, organization_id: str, user_id: str, now: datetime) -> bool: ...


class Feed(Protocol):
    def heads(self, organization_ids: Sequence[str]) -> dict[str, int]: ...
    def after(self, organization_id: str, seq: int, limit: int) -> list[AuditEvent]: ...
    def unplaced(self) -> bool: ...
    def place(self, limit: int) -> int | None: ...
    def newest_position(self) -> int: ...
    def after_position(self, position: int, limit: int) -> list[AuditEvent]: ...


class Idempotency(Protocol):
    def claim(
        self,
        *,
        user_id: str,
        request_id: str,
        operation: str,
        request_hash: str,
        resource_id: str,
        now: datetime,
        not_before: datetime,
    ) -> PriorRequest | None: ...


class UnitOfWork(Protocol):
    @property
    def users(self) -> Users: ...
    @property
    def organizations(self) -> Organizations: ...
    @property
    def memberships(self) -> Memberships: ...
    @property
    def roles(self) -> Roles: ...
    @property
    def workspaces(self) -> Workspaces: ...
    @property
    def invitations(self) -> Invitations: ...
    @property
    def audit(self) -> Audit: ...
    @property
    def feed(self) -> Feed: ...
    @property
    def idempotency(self) -> Idempotency: ...
    @property
    def domains(self) -> Domains: ...
    @property
    def auto_joins(self) -> AutoJoins: ...

    def access(
        self, organization_id: str, user_id: str, *, lock: bool = False
    ) -> AccessRecord | None:
        """The user's standing in the organization (None: it does not exist); `lock`
        takes the organization row lock that every mutation holds."""

    def organization(self, organization_id: str) -> Organization | None:
        """The organization, from the read cache when the unit of work may use it."""

    def organization_seen_by(
        self, organization_id: str, user_id: str
    ) -> tuple[Organization | None, AccessRecord | None]:
        """The organization and the user's standing in it (both None when it does not
        exist), from the read cache or in one query."""

    def organization_id_for_slug(self, slug: str) -> str | None: ...

    def commit(self) -> None: ...


class Database(Protocol):
    def transaction(self, budget: Budget) -> AbstractContextManager[UnitOfWork]: ...
    def snapshot(
        self, budget: Budget, *, cached: bool = True
    ) -> AbstractContextManager[UnitOfWork]: ...


class TxtResolver(Protocol):
    """DNS TXT lookups for domain verification."""

    def txt_strings(self, name: str, timeout: float) -> list[str]:
        """The strings of the TXT records at `name` (each record's strings also joined,
        as long values are split); empty when the name or its TXT records do not exist.
        Raises DnsUnavailable when the resolver fails or does not answer within
        `timeout` seconds."""
        ...
