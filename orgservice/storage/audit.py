"""The audit log: one event per mutation, written in the mutation's transaction, numbered
per organization in commit order (the change feed reads it as an outbox)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import bindparam, insert, or_, select, update

from orgservice.domain.models import AuditEvent, Page, PageRequest
from orgservice.domain.validation import new_id
from orgservice.storage.paging import AnyRow, Pager, escape_like
from orgservice.storage.sql import Sql
from orgservice.storage.tables import audit_events, organizations

_IN_ORGANIZATION = select(audit_events).where(
    audit_events.c.organization_id == bindparam("organization_id")
)
# `action` matches itself or, as a group, `action.*`.
_PAGES = {
    by_action: Pager(
        _IN_ORGANIZATION.where(
            or_(
                audit_events.c.action == bindparam("action"),
                audit_events.c.action.like(bindparam("group"), escape="\\"),
            )
        )
        if by_action
        else _IN_ORGANIZATION,
        create_time=audit_events.c.create_time,
        id_column=audit_events.c.id,
        newest_first=True,
    )
    for by_action in (False, True)
}


_COLUMNS = ("actor_user_id", "action", "target_type", "target_id", "details")
_NEXT_SEQ = (
    update(organizations)
    .where(organizations.c.id == bindparam("organization_id"))
    .values(event_seq=organizations.c.event_seq + 1)
    .returning(organizations.c.event_seq)
)
# PostgreSQL numbers and inserts the event in one statement (a data-modifying CTE).
_NUMBERED = _NEXT_SEQ.cte("numbered")
# Parameter names that are columns of `organizations` would become SET values of the
# UPDATE: the event's id and time go by other names.
_RECORD_NUMBERED = insert(audit_events).from_select(
    ["organization_id", "id", "seq", "create_time", *_COLUMNS],
    select(
        bindparam("organization_id", type_=audit_events.c.organization_id.type),
        bindparam("event_id", type_=audit_events.c.id.type),
        _NUMBERED.c.event_seq,
        bindparam("event_time", type_=audit_events.c.create_time.type),
        *(bindparam(name, type_=audit_events.c[name].type) for name in _COLUMNS),
    ),
)


class AuditRepository:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

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
        """Adds an event numbered after the organization's newest; the caller holds the
        organization row lock, so the numbers follow commit order."""
        event_id = new_id()
        values = {
            "organization_id": organization_id,
            "actor_user_id": actor_user_id,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "details": dict(details or {}),
        }
        if self._sql.postgresql:
            self._sql.execute(_RECORD_NUMBERED, {**values, "event_id": event_id, "event_time": now})
            return
        seq = self._sql.execute(_NEXT_SEQ, {"organization_id": organization_id}).scalar_one()
        self._sql.execute(
            insert(audit_events), {**values, "id": event_id, "create_time": now, "seq": seq}
        )

    def find_page(self, organization_id: str, action: str, page: PageRequest) -> Page[AuditEvent]:
        """Newest first; `action` matches itself or, as a group, `action.*`."""
        parameters = {
            "organization_id": organization_id,
            "action": action,
            "group": f"{escape_like(action)}.%",
        }
        return _PAGES[bool(action)].fetch(self._sql, page, parameters, to_event)


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
