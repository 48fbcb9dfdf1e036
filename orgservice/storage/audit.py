"""The audit log: one event per mutation, written in the mutation's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from orgservice.domain.models import AuditEvent, Cursor, Page, PageRequest
from orgservice.domain.validation import new_id
from orgservice.storage.paging import AnyRow, escape_like, fetch_page
from orgservice.storage.tables import AuditEventRow


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

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
    ) -> None:
        self._session.add(
            AuditEventRow(
                organization_id=organization_id,
                id=new_id(),
                actor_user_id=actor_user_id,
                action=action,
                target_type=target_type,
                target_id=target_id,
                details=dict(details or {}),
                create_time=now,
            )
        )

    def find_page(self, organization_id: str, action: str, page: PageRequest) -> Page[AuditEvent]:
        """Newest first; `action` matches itself or, as a group, `action.*`."""
        query = select(AuditEventRow).where(AuditEventRow.organization_id == organization_id)
        if action:
            query = query.where(
                or_(
                    AuditEventRow.action == action,
                    AuditEventRow.action.like(f"{escape_like(action)}.%", escape="\\"),
                )
            )
        rows, total, next_cursor = fetch_page(
            self._session,
            query,
            create_time=AuditEventRow.create_time,
            id_column=AuditEventRow.id,
            page=page,
            cursor_of=_cursor_of,
            newest_first=True,
        )
        return Page([_to_event(row[0]) for row in rows], total, next_cursor)


def _cursor_of(row: AnyRow) -> Cursor:
    event: AuditEventRow = row[0]
    return Cursor(event.create_time, event.id)


def _to_event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        organization_id=row.organization_id,
        actor_user_id=row.actor_user_id,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        details=dict(row.details),
        create_time=row.create_time,
    )
