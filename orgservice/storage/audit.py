"""The audit log: one event per mutation, written in the mutation's transaction, numbered
per organization in commit order (the change feed reads it as an outbox)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import insert
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update

from orgservice.domain.models import AuditEvent
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.storage.paging import Pager
from orgservice.storage.paging import escape_like
from orgservice.storage.rows import AnyRow
from orgservice.storage.rows import from_row
from orgservice.storage.sql import Repository
from orgservice.storage.tables import audit_events
from orgservice.storage.tables import organizations

_IN_ORGANIZATION = select(audit_events).where(
    audit_events.c.organization_id == bindparam("organization_id")
)
# `action` matches itself or, as a group, `action.*`.
_ALL = Pager(
    _IN_ORGANIZATION,
    create_time=audit_events.c.create_time,
    id_column=audit_events.c.id,
    newest_first=True,
)
_PAGES = {
    False: _ALL,
    True: _ALL.narrowed(
        or_(
            audit_events.c.action == bindparam("action"),
            audit_events.c.action.like(bindparam("group"), escape="\\"),
        )
    ),
}


EVENT_COLUMNS = ("actor_user_id", "action", "target_type", "target_id", "details")
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
    ["organization_id", "id", "seq", "create_time", *EVENT_COLUMNS],
    select(
        bindparam("organization_id", type_=audit_events.c.organization_id.type),
        bindparam("event_id", type_=audit_events.c.id.type),
        _NUMBERED.c.event_seq,
        bindparam("event_time", type_=audit_events.c.create_time.type),
        *(bindparam(name, type_=audit_events.c[name].type) for name in EVENT_COLUMNS),
    ),
)


_INSERT = insert(audit_events)


def _values(
    event: AuditEvent, *, id_key: str = "id", time_key: str = "create_time"
) -> dict[str, Any]:
    """The event's columns as parameters, its id and time under the keys given."""
    return {
        "organization_id": event.organization_id,
        **{name: getattr(event, name) for name in EVENT_COLUMNS},
        id_key: event.id,
        time_key: event.create_time,
    }


class AuditRepository(Repository):
    def record(self, event: AuditEvent) -> None:
        """Adds the event numbered after the organization's newest; the caller holds the
        organization row lock, so the numbers follow commit order."""
        if self._sql.postgresql:
            self._sql.execute(
                _RECORD_NUMBERED, _values(event, id_key="event_id", time_key="event_time")
            )
            return
        next_seq = {"organization_id": event.organization_id}
        seq = self._sql.execute(_NEXT_SEQ, next_seq).scalar_one()
        self.insert(event, seq)

    def insert(self, event: AuditEvent, seq: int) -> None:
        """Adds the event with the number given (the organization's row says it is next)."""
        self._sql.execute(_INSERT, {**_values(event), "seq": seq})

    def find_page(self, organization_id: str, action: str, page: PageRequest) -> Page[AuditEvent]:
        """Newest first; `action` matches itself or, as a group, `action.*`."""
        parameters = {
            "organization_id": organization_id,
            "action": action,
            "group": f"{escape_like(action)}.%",
        }
        return _PAGES[bool(action)].fetch(self._sql, page, parameters, to_event)


def to_event(row: AnyRow) -> AuditEvent:
    columns = row._mapping
    return from_row(
        AuditEvent,
        row,
        details=dict(columns["details"]),
        feed_position=columns["feed_position"] or 0,
    )
