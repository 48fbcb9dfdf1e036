"""Organizations, with their member and workspace counts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from orgservice.domain.errors import AlreadyExists
from orgservice.domain.models import (
    Cursor,
    Organization,
    OrganizationFields,
    OrganizationState,
    Page,
    PageRequest,
)
from orgservice.domain.permissions import OWNER
from orgservice.storage.database import flush_unique
from orgservice.storage.paging import AnyRow, fetch_page, name_or_slug_contains
from orgservice.storage.tables import MembershipRow, OrganizationRow, WorkspaceRow

_MEMBER_COUNT = (
    select(func.count())
    .where(MembershipRow.organization_id == OrganizationRow.id)
    .correlate(OrganizationRow)
    .scalar_subquery()
)
_WORKSPACE_COUNT = (
    select(func.count())
    .where(WorkspaceRow.organization_id == OrganizationRow.id)
    .correlate(OrganizationRow)
    .scalar_subquery()
)
_WITH_COUNTS = select(OrganizationRow, _MEMBER_COUNT, _WORKSPACE_COUNT)


def slug_taken(slug: str) -> AlreadyExists:
    return AlreadyExists(
        f"the slug {slug!r} is already taken", reason="SLUG_TAKEN", metadata={"slug": slug}
    )


@dataclass(frozen=True)
class OrganizationQuery:
    """Which organizations a list returns."""

    member_user_id: str | None  # None: every organization (platform callers)
    name_filter: str = ""
    show_deleted: bool = False


class OrganizationRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(
        self,
        *,
        organization_id: str,
        slug: str,
        name: str,
        description: str,
        labels: dict[str, str],
        personal: bool,
        now: datetime,
    ) -> None:
        """Inserts an active organization; raises AlreadyExists(SLUG_TAKEN) on a clash."""
        row = OrganizationRow(
            id=organization_id,
            slug=slug,
            name=name,
            description=description,
            labels=labels,
            personal=personal,
            state=OrganizationState.ACTIVE.value,
            version=1,
            create_time=now,
            update_time=now,
        )
        self._flush_guarding_slug(slug, lambda: self._session.add(row))

    def slug_exists(self, slug: str) -> bool:
        return bool(self._session.scalar(select(exists().where(OrganizationRow.slug == slug))))

    def id_for_slug(self, slug: str) -> str | None:
        return self._session.scalar(select(OrganizationRow.id).where(OrganizationRow.slug == slug))

    def get(self, organization_id: str) -> Organization | None:
        self._session.flush()
        row = self._session.execute(
            _WITH_COUNTS.where(OrganizationRow.id == organization_id)
        ).first()
        return _to_organization(row) if row else None

    def update(self, organization_id: str, fields: OrganizationFields, now: datetime) -> None:
        """Applies the fields that are not None; raises AlreadyExists(SLUG_TAKEN)."""
        row = self._session.get_one(OrganizationRow, organization_id)

        def apply() -> None:
            if fields.name is not None:
                row.name = fields.name
            if fields.slug is not None:
                row.slug = fields.slug
            if fields.description is not None:
                row.description = fields.description
            if fields.labels is not None:
                row.labels = dict(fields.labels)
            row.version += 1
            row.update_time = now

        self._flush_guarding_slug(fields.slug or row.slug, apply)

    def set_state(
        self,
        organization_id: str,
        state: OrganizationState,
        now: datetime,
        purge_time: datetime | None,
    ) -> None:
        row = self._session.get_one(OrganizationRow, organization_id)
        row.state = state.value
        row.delete_time = now if state is OrganizationState.DELETED else None
        row.purge_time = purge_time
        row.version += 1
        row.update_time = now

    def _flush_guarding_slug(self, slug: str, change: Callable[[], None]) -> None:
        if not flush_unique(self._session, change):
            raise slug_taken(slug)

    def lock(self, organization_id: str) -> OrganizationState | None:
        """Locks the organization row (FOR UPDATE) and returns its state."""
        state = self._session.scalar(
            select(OrganizationRow.state)
            .where(OrganizationRow.id == organization_id)
            .with_for_update()
        )
        return OrganizationState(state) if state else None

    def find_page(self, query: OrganizationQuery, page: PageRequest) -> Page[Organization]:
        statement = _WITH_COUNTS
        if query.member_user_id is not None:
            statement = statement.join(
                MembershipRow,
                (MembershipRow.organization_id == OrganizationRow.id)
                & (MembershipRow.user_id == query.member_user_id),
            )
        if query.show_deleted:
            # Members see deleted organizations only where they could undelete them.
            if query.member_user_id is not None:
                statement = statement.where(
                    or_(
                        OrganizationRow.state == OrganizationState.ACTIVE.value,
                        MembershipRow.role == OWNER,
                    )
                )
        else:
            statement = statement.where(OrganizationRow.state == OrganizationState.ACTIVE.value)
        if query.name_filter:
            statement = statement.where(
                name_or_slug_contains(OrganizationRow.name, OrganizationRow.slug, query.name_filter)
            )
        rows, total, next_cursor = fetch_page(
            self._session,
            statement,
            create_time=OrganizationRow.create_time,
            id_column=OrganizationRow.id,
            page=page,
            cursor_of=_cursor_of,
        )
        return Page([_to_organization(row) for row in rows], total, next_cursor)


def _cursor_of(row: AnyRow) -> Cursor:
    organization: OrganizationRow = row[0]
    return Cursor(organization.create_time, organization.id)


def etag_of(entity_id: str, version: int) -> str:
    return hashlib.blake2b(f"{entity_id}:{version}".encode(), digest_size=8).hexdigest()


def _to_organization(row: AnyRow) -> Organization:
    organization: OrganizationRow = row[0]
    member_count: int = row[1]
    workspace_count: int = row[2]
    return Organization(
        id=organization.id,
        slug=organization.slug,
        name=organization.name,
        description=organization.description,
        labels=dict(organization.labels),
        personal=organization.personal,
        state=OrganizationState(organization.state),
        member_count=member_count,
        workspace_count=workspace_count,
        create_time=organization.create_time,
        update_time=organization.update_time,
        delete_time=organization.delete_time,
        purge_time=organization.purge_time,
        etag=etag_of(organization.id, organization.version),
    )
