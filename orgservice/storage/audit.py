"""The audit log: one event per mutation, written in the mutation's transaction, numbered
per organization in commit order (the change feed reads it as an outbox)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import insert, or_, select

from orgservice.domain.models import AuditEvent, Page, PageRequest
from orgservice.domain.validation import new_id
from orgservice.storage.organizations import OrganizationRepository
from orgservice.storage.paging import AnyRow, escape_like, fetch_page
from orgservice.storage.sql import Sql
from orgservice.storage.tables import audit_events


class AuditRepository:
    def __init__(self, sql: Sql, organizations: OrganizationRepository) -> None:
        self._sql = sql
        self._organizations = organizations

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
        """Adds an event; the caller holds the organization row lock."""
        self._sql.execute(
            insert(audit_events),
            {
                "organization_id": organization_id,
                "id": new_id(),
                "seq": self._organizations.next_event_seq(organization_id),
                "actor_user_id": actor_user_id,
                "action": action,
                "target_type": target_type,
                "target_id": target_id,
                "details": dict(details or {}),
                "create_time": now,
            },
        )

    def find_page(self, organization_id: str, action: str, page: PageRequest) -> Page[AuditEvent]:
        """Newest first; `action` matches itself or, as a group, `action.*`."""
        query = select(audit_events).where(audit_events.c.organization_id == organization_id)
        if action:
            query = query.where(
                or_(
                    audit_events.c.action == action,
                    audit_events.c.action.like(f"{escape_like(action)}.%", escape="\\"),
                )
            )
        return fetch_page(
            self._sql,
            query,
            create_time=audit_events.c.create_time,
            id_column=audit_events.c.id,
            page=page,
            convert=to_event,
            newest_first=True,
        )


def to_event(row: AnyRow) -> AuditEvent:
    e = row._mapping
    return AuditEvent(
        id=e["id"],
        organization_id=e["organization_id"],
        actor_user_id=e["actor_user_id"],
        action=e["action"],
        target_type=e["target_type"],
        target_id=e["target_id"],
        details=dict(e["details"]),
        create_time=e["create_time"],
        seq=e["seq"],
        feed_position=e["feed_position"] or 0,
    )
