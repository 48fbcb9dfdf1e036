"""The change feed: the audit log read as an outbox, per organization and across all.

Per organization, events are numbered (`seq`) under the organization row lock, so seq
order is commit order and an organization's committed events always number 1..head
without a gap: reading `seq > s` in order never skips an event committed later.

Across organizations no such number can be given at commit time without making every
write wait for one global counter. Instead, committed events get a feed position
afterwards (`place`): one placer at a time (a transaction-level advisory lock on
PostgreSQL, the write lock on SQLite) numbers the committed events that have none, each
organization's in seq order, above the highest position given so far, and commits
before the next placer starts. So positions become visible in increasing order, and an
organization's events get increasing positions in commit order: reading `position > p`
in order never skips an event (one placed later gets a higher position) and shows each
organization's events in commit order.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Integer
from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from orgservice.domain.models import AuditEvent
from orgservice.storage.audit import to_event
from orgservice.storage.sql import Repository
from orgservice.storage.tables import audit_events
from orgservice.storage.tables import organizations

# Arbitrary constant naming the feed placer's advisory lock (see purge's and migrations').
PLACE_LOCK_KEY = 0x6F7267666565
_EVENTS = audit_events.c
_PLACE = (
    update(audit_events)
    .where(_EVENTS.organization_id == bindparam("o"), _EVENTS.id == bindparam("i"))
    .values(feed_position=bindparam("p"))
)

# max() skips NULLs, but says so for SQLite, which reads a partial index only for a
# query whose condition implies the index's.
NEWEST_POSITION = select(func.max(_EVENTS.feed_position)).where(_EVENTS.feed_position.is_not(None))
AFTER_POSITION = (
    select(audit_events)
    .where(_EVENTS.feed_position > bindparam("position"))
    .order_by(_EVENTS.feed_position)
    .limit(bindparam("limit", type_=Integer))
)


class FeedRepository(Repository):
    def heads(self, organization_ids: Sequence[str]) -> dict[str, int]:
        """Each existing organization's newest event number."""
        rows = self._sql.execute(
            select(organizations.c.id, organizations.c.event_seq).where(
                organizations.c.id.in_(organization_ids)
            )
        ).all()
        return dict(rows)

    def after(self, organization_id: str, seq: int, limit: int) -> list[AuditEvent]:
        """The organization's events numbered above `seq`, in order."""
        rows = self._sql.execute(
            select(audit_events)
            .where(_EVENTS.organization_id == organization_id, _EVENTS.seq > seq)
            .order_by(_EVENTS.seq)
            .limit(limit)
        ).all()
        return [to_event(row) for row in rows]

    def unplaced(self) -> bool:
        """Whether some committed event awaits its feed position."""
        found = self._sql.execute(
            select(_EVENTS.seq).where(_EVENTS.feed_position.is_(None)).limit(1)
        ).first()
        return found is not None

    def place(self, limit: int) -> int | None:
        """Gives up to `limit` committed events their feed positions (in a transaction
        the caller commits); None when another process is placing."""
        if self._sql.postgresql:
            locked = self._sql.execute(select(func.pg_try_advisory_xact_lock(PLACE_LOCK_KEY)))
            if not locked.scalar_one():
                return None
        unplaced = self._sql.execute(
            select(_EVENTS.organization_id, _EVENTS.id)
            .where(_EVENTS.feed_position.is_(None))
            .order_by(_EVENTS.organization_id, _EVENTS.seq)
            .limit(limit)
        ).all()
        if unplaced:
            start = self.newest_position() + 1
            self._sql.execute(
                _PLACE, [{"o": o, "i": i, "p": start + n} for n, (o, i) in enumerate(unplaced)]
            )
        return len(unplaced)

    def newest_position(self) -> int:
        newest: int | None = self._sql.execute(NEWEST_POSITION).scalar()
        return newest or 0

    def after_position(self, position: int, limit: int) -> list[AuditEvent]:
        """Placed events above `position`, in feed order."""
        rows = self._sql.execute(AFTER_POSITION, {"position": position, "limit": limit}).all()
        return [to_event(row) for row in rows]
