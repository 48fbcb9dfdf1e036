"""Workspaces inside organizations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from orgservice.domain.errors import AlreadyExists
from orgservice.domain.models import Cursor, Page, PageRequest, Workspace, WorkspaceFields
from orgservice.storage.database import flush_unique
from orgservice.storage.organizations import etag_of
from orgservice.storage.paging import AnyRow, fetch_page, name_or_slug_contains
from orgservice.storage.tables import WorkspaceRow


def workspace_slug_taken(slug: str) -> AlreadyExists:
    return AlreadyExists(
        f"the workspace slug {slug!r} is already taken in this organization",
        reason="SLUG_TAKEN",
        metadata={"slug": slug},
    )


class WorkspaceRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(
        self,
        *,
        organization_id: str,
        workspace_id: str,
        slug: str,
        name: str,
        description: str,
        now: datetime,
    ) -> None:
        """Inserts a workspace; raises AlreadyExists(SLUG_TAKEN) on a slug clash."""
        row = WorkspaceRow(
            organization_id=organization_id,
            id=workspace_id,
            slug=slug,
            name=name,
            description=description,
            version=1,
            create_time=now,
            update_time=now,
        )
        if not flush_unique(self._session, lambda: self._session.add(row)):
            raise workspace_slug_taken(slug)

    def exists(self, organization_id: str, workspace_id: str) -> bool:
        return self._session.get(WorkspaceRow, (organization_id, workspace_id)) is not None

    def slug_exists(self, organization_id: str, slug: str) -> bool:
        return bool(
            self._session.scalar(
                select(
                    exists().where(
                        WorkspaceRow.organization_id == organization_id, WorkspaceRow.slug == slug
                    )
                )
            )
        )

    def get(self, organization_id: str, workspace_id: str) -> Workspace | None:
        self._session.flush()
        row = self._session.get(WorkspaceRow, (organization_id, workspace_id))
        return _to_workspace(row) if row else None

    def find_page(
        self, organization_id: str, name_filter: str, page: PageRequest
    ) -> Page[Workspace]:
        query = select(WorkspaceRow).where(WorkspaceRow.organization_id == organization_id)
        if name_filter:
            query = query.where(
                name_or_slug_contains(WorkspaceRow.name, WorkspaceRow.slug, name_filter)
            )
        rows, total, next_cursor = fetch_page(
            self._session,
            query,
            create_time=WorkspaceRow.create_time,
            id_column=WorkspaceRow.id,
            page=page,
            cursor_of=_cursor_of,
        )
        return Page([_to_workspace(row[0]) for row in rows], total, next_cursor)

    def update(
        self, organization_id: str, workspace_id: str, fields: WorkspaceFields, now: datetime
    ) -> None:
        """Applies the fields that are not None; raises AlreadyExists(SLUG_TAKEN)."""
        row = self._session.get_one(WorkspaceRow, (organization_id, workspace_id))

        def apply() -> None:
            if fields.name is not None:
                row.name = fields.name
            if fields.slug is not None:
                row.slug = fields.slug
            if fields.description is not None:
                row.description = fields.description
            row.version += 1
            row.update_time = now

        if not flush_unique(self._session, apply):
            raise workspace_slug_taken(fields.slug or row.slug)

    def delete(self, organization_id: str, workspace_id: str) -> None:
        self._session.execute(
            delete(WorkspaceRow).where(
                WorkspaceRow.organization_id == organization_id, WorkspaceRow.id == workspace_id
            )
        )


def _cursor_of(row: AnyRow) -> Cursor:
    workspace: WorkspaceRow = row[0]
    return Cursor(workspace.create_time, workspace.id)


def _to_workspace(row: WorkspaceRow) -> Workspace:
    return Workspace(
        id=row.id,
        organization_id=row.organization_id,
        slug=row.slug,
        name=row.name,
        description=row.description,
        create_time=row.create_time,
        update_time=row.update_time,
        etag=etag_of(row.id, row.version),
    )
