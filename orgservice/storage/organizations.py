"""Organizations, their slugs (a registry unique across organizations) and counters."""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update

from orgservice.domain.errors import SlugTaken
from orgservice.domain.models import NewOrganization
from orgservice.domain.models import Organization
from orgservice.domain.models import OrganizationFields
from orgservice.domain.models import OrganizationQuery
from orgservice.domain.models import OrganizationSettings
from orgservice.domain.models import OrganizationState
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.permissions import OWNER
from orgservice.storage.member_search import MemberSearchIndex
from orgservice.storage.organization_creation import create_organization
from orgservice.storage.organization_creation import settings_values
from orgservice.storage.paging import Pager
from orgservice.storage.paging import contains_pattern
from orgservice.storage.paging import name_or_slug_contains
from orgservice.storage.rows import AnyRow
from orgservice.storage.rows import from_row
from orgservice.storage.sql import Repository
from orgservice.storage.sql import Sql
from orgservice.storage.sql import insert_if_absent
from orgservice.storage.tables import memberships
from orgservice.storage.tables import organization_slugs
from orgservice.storage.tables import organizations

_ACTIVE = OrganizationState.ACTIVE.value
_BY_ID = select(organizations).where(organizations.c.id == bindparam("id"))
_ID_FOR_SLUG = select(organization_slugs.c.organization_id).where(
    organization_slugs.c.slug == bindparam("slug")
)
_STATE_FOR_UPDATE = (
    select(organizations.c.state).where(organizations.c.id == bindparam("id")).with_for_update()
)


@functools.cache
def _pager(of_member: bool, show_deleted: bool, filtered: bool) -> Pager:
    """The list of a member's organizations (or of all, for platform callers)."""
    statement = select(organizations)
    if of_member:
        statement = statement.join(
            memberships,
            (memberships.c.organization_id == organizations.c.id)
            & (memberships.c.user_id == bindparam("user_id")),
        )
    if not show_deleted:
        statement = statement.where(organizations.c.state == _ACTIVE)
    elif of_member:
        # Members see deleted organizations only where they could undelete them.
        statement = statement.where(
            or_(organizations.c.state == _ACTIVE, memberships.c.role == OWNER)
        )
    if filtered:
        statement = statement.where(
            name_or_slug_contains(organizations.c.name, organizations.c.slug)
        )
    return Pager(statement, create_time=organizations.c.create_time, id_column=organizations.c.id)


def etag_of(entity_id: str, version: int) -> str:
    return hashlib.blake2b(f"{entity_id}:{version}".encode(), digest_size=8).hexdigest()


class OrganizationRepository(Repository):
    def __init__(self, sql: Sql, search: MemberSearchIndex) -> None:
        super().__init__(sql)
        self._search = search

    def create(self, new: NewOrganization, *, commit: bool = False) -> Organization | None:
        """Inserts an active organization with its built-in roles, its owner, its
        default workspace and its first audit event; None when every slug is taken.
        `commit`: and commits the unit of work if it did."""
        slug = create_organization(self._sql, self._search, new, alone=commit)
        if slug is None:
            return None
        self._sql.touch(new.id, announce=False)
        if commit:
            self._sql.commit()
        return Organization(
            id=new.id,
            slug=slug,
            name=new.name,
            description=new.description,
            labels=dict(new.labels),
            personal=new.personal,
            state=OrganizationState.ACTIVE,
            member_count=1,
            workspace_count=1,
            create_time=new.create_time,
            update_time=new.create_time,
            delete_time=None,
            purge_time=None,
            etag=etag_of(new.id, 1),
        )

    def id_for_slug(self, slug: str) -> str | None:
        found: str | None = self._sql.execute(_ID_FOR_SLUG, {"slug": slug}).scalar()
        return found

    def get(self, organization_id: str) -> Organization | None:
        row = self._sql.execute(_BY_ID, {"id": organization_id}).first()
        return to_organization(row) if row else None

    def lock(self, organization_id: str) -> OrganizationState | None:
        """Locks the organization row (FOR UPDATE) and returns its state."""
        self._sql.touch(organization_id)
        state = self._sql.execute(_STATE_FOR_UPDATE, {"id": organization_id}).scalar()
        return OrganizationState(state) if state else None

    def update(self, organization_id: str, fields: OrganizationFields, now: datetime) -> None:
        """Applies the fields that are not None; raises SlugTaken."""
        values: dict[str, Any] = {
            name: value
            for name, value in (
                ("name", fields.name),
                ("description", fields.description),
                ("labels", fields.labels),
                ("public_metadata", fields.public_metadata and fields.public_metadata.document),
                ("private_metadata", fields.private_metadata and fields.private_metadata.document),
            )
            if value is not None
        }
        if fields.settings is not None:
            new = settings_values(fields.settings.values)
            values.update((name, new[name]) for name in fields.settings.fields)
        if fields.slug is not None:
            current = self._sql.execute(
                select(organizations.c.slug).where(organizations.c.id == organization_id)
            ).scalar_one()
            if fields.slug != current:
                if not self._claim_slug(fields.slug, organization_id):
                    raise SlugTaken(fields.slug)
                self._sql.execute(
                    delete(organization_slugs).where(organization_slugs.c.slug == current)
                )
                values["slug"] = fields.slug
        self._bump(organization_id, now, **values)

    def set_state(
        self,
        organization_id: str,
        state: OrganizationState,
        now: datetime,
        purge_time: datetime | None,
    ) -> None:
        self._bump(
            organization_id,
            now,
            state=state.value,
            delete_time=now if state is OrganizationState.DELETED else None,
            purge_time=purge_time,
        )

    def count_change(self, organization_id: str, *, members: int = 0, workspaces: int = 0) -> None:
        """Keeps member_count and workspace_count exact, in the changing transaction."""
        self._sql.execute(
            update(organizations)
            .where(organizations.c.id == organization_id)
            .values(
                member_count=organizations.c.member_count + members,
                workspace_count=organizations.c.workspace_count + workspaces,
            )
        )

    def find_page(self, query: OrganizationQuery, page: PageRequest) -> Page[Organization]:
        pager = _pager(
            query.member_user_id is not None, query.show_deleted, bool(query.name_filter)
        )
        parameters = {
            "user_id": query.member_user_id,
            "pattern": contains_pattern(query.name_filter),
        }
        return pager.fetch(self._sql, page, parameters, to_organization)

    def _claim_slug(self, slug: str, organization_id: str) -> bool:
        return insert_if_absent(
            self._sql, organization_slugs, {"slug": slug, "organization_id": organization_id}
        )

    def _bump(self, organization_id: str, now: datetime, **values: Any) -> None:
        self._sql.execute(
            update(organizations)
            .where(organizations.c.id == organization_id)
            .values(version=organizations.c.version + 1, update_time=now, **values)
        )


def to_organization(row: AnyRow) -> Organization:
    columns = row._mapping
    return from_row(
        Organization,
        row,
        labels=dict(columns["labels"]),
        state=OrganizationState(columns["state"]),
        etag=etag_of(columns["id"], columns["version"]),
        settings=from_row(OrganizationSettings, row),
        public_metadata=dict(columns["public_metadata"]),
        private_metadata=dict(columns["private_metadata"]),
    )
