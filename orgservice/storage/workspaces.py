"""Workspaces inside organizations; slugs are unique within their organization."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import exists
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from orgservice.domain.errors import SlugTaken
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.models import Workspace
from orgservice.domain.models import WorkspaceFields
from orgservice.storage.organizations import OrganizationRepository
from orgservice.storage.organizations import etag_of
from orgservice.storage.paging import Pager
from orgservice.storage.paging import contains_pattern
from orgservice.storage.paging import name_or_slug_contains
from orgservice.storage.rows import AnyRow
from orgservice.storage.rows import from_row
from orgservice.storage.sql import Sql
from orgservice.storage.tables import workspaces

_WORKSPACE = select(workspaces).where(
    workspaces.c.organization_id == bindparam("organization_id"), workspaces.c.id == bindparam("id")
)


_IN_ORGANIZATION = select(workspaces).where(
    workspaces.c.organization_id == bindparam("organization_id")
)
_ALL = Pager(_IN_ORGANIZATION, create_time=workspaces.c.create_time, id_column=workspaces.c.id)
_PAGES = {
    False: _ALL,
    True: _ALL.narrowed(name_or_slug_contains(workspaces.c.name, workspaces.c.slug)),
}


def workspace_slug_taken(slug: str) -> SlugTaken:
    return SlugTaken(slug, scope="organization")


class WorkspaceRepository:
    def __init__(self, sql: Sql, organizations: OrganizationRepository) -> None:
        self._sql = sql
        self._organizations = organizations

    def add(
        self,
        *,
        organization_id: str,
        workspace_id: str,
        slug: str,
        name: str,
        description: str,
        now: datetime,
    ) -> bool:
        """Inserts a workspace; False when the slug is taken in the organization."""
        dialect_insert = pg_insert if self._sql.postgresql else sqlite_insert
        statement: Any = (
            dialect_insert(workspaces).on_conflict_do_nothing().returning(workspaces.c.id)
        )
        inserted = self._sql.execute(
            statement,
            {
                "organization_id": organization_id,
                "id": workspace_id,
                "slug": slug,
                "name": name,
                "description": description,
                "version": 1,
                "create_time": now,
                "update_time": now,
            },
        ).first()
        if inserted is not None:
            self._organizations.count_change(organization_id, workspaces=1)
        return inserted is not None

    def exists(self, organization_id: str, workspace_id: str) -> bool:
        return bool(
            self._sql.execute(
                select(
                    exists().where(
                        workspaces.c.organization_id == organization_id,
                        workspaces.c.id == workspace_id,
                    )
                )
            ).scalar()
        )

    def get(self, organization_id: str, workspace_id: str) -> Workspace | None:
        row = self._sql.execute(
            _WORKSPACE, {"organization_id": organization_id, "id": workspace_id}
        ).first()
        return _to_workspace(row) if row else None

    def find_page(
        self, organization_id: str, name_filter: str, page: PageRequest, *, total: int | None
    ) -> Page[Workspace]:
        """`total`: the organization's workspace count, used when there is no filter."""
        return _PAGES[bool(name_filter)].fetch(
            self._sql,
            page,
            {"organization_id": organization_id, "pattern": contains_pattern(name_filter)},
            _to_workspace,
            total=None if name_filter else total,
        )

    def update(
        self, organization_id: str, workspace_id: str, fields: WorkspaceFields, now: datetime
    ) -> None:
        """Applies the fields that are not None; raises SlugTaken."""
        values = {
            name: value
            for name, value in (
                ("name", fields.name),
                ("slug", fields.slug),
                ("description", fields.description),
            )
            if value is not None
        }
        try:
            self._sql.execute(
                update(workspaces)
                .where(
                    workspaces.c.organization_id == organization_id, workspaces.c.id == workspace_id
                )
                .values(version=workspaces.c.version + 1, update_time=now, **values)
            )
        except IntegrityError as error:
            raise workspace_slug_taken(fields.slug or "") from error

    def delete(self, organization_id: str, workspace_id: str) -> None:
        deleted = self._sql.execute(
            delete(workspaces).where(
                workspaces.c.organization_id == organization_id, workspaces.c.id == workspace_id
            )
        ).rowcount
        self._organizations.count_change(organization_id, workspaces=-deleted)


def _to_workspace(row: AnyRow) -> Workspace:
    columns = row._mapping
    return from_row(Workspace, row, etag=etag_of(columns["id"], columns["version"]))
