"""Workspaces inside organizations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orgservice.domain.errors import AlreadyExists
from orgservice.storage.database import is_unique_violation
from orgservice.storage.tables import WorkspaceRow


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
        try:
            with self._session.begin_nested():
                self._session.add(row)
        except IntegrityError as error:
            if is_unique_violation(error):
                raise AlreadyExists(
                    f"the workspace slug {row.slug!r} is already taken in this organization",
                    reason="SLUG_TAKEN",
                    metadata={"slug": row.slug},
                ) from error
            raise

    def exists(self, organization_id: str, workspace_id: str) -> bool:
        return self._session.get(WorkspaceRow, (organization_id, workspace_id)) is not None
