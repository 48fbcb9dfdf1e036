"""The change feed behind WatchEvents: the audit log of one organization (needs
`audit.list`) or of every organization (platform callers), read in order after a
position (storage.feed explains why nothing is ever skipped).

A stream is a sequence of these short use cases, each in a unit of work of its own:
`open` once, then `read` whenever the organization may have changed. Every read of an
organization's feed authorizes the caller against the database again, so a watcher who
loses access is refused at its next read, which the change that took the access away
triggers.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence

from orgservice.domain.authorization import to_read
from orgservice.domain.budget import Budget
from orgservice.domain.errors import CursorExpired
from orgservice.domain.errors import PermissionDenied
from orgservice.domain.errors import invalid
from orgservice.domain.models import AuditEvent
from orgservice.domain.models import Call
from orgservice.domain.models import FeedPosition
from orgservice.domain.permissions import AUDIT_LIST
from orgservice.service.authorization import authorize
from orgservice.service.use_cases import UseCases

WATCH = to_read(AUDIT_LIST)
# Events per read; a stream reads again at once while reads come back full.
READ_BATCH = 100
PLACE_BATCH = 1000

# Decodes the request's start cursor for an organization ("" for every organization),
# once the caller is authorized; None when the request has none.
StartCursor = Callable[[str], FeedPosition | None]


class FeedService(UseCases):
    def open(self, call: Call, organization_id: str, cursor: StartCursor) -> FeedPosition:
        """Where a new stream starts: after the start cursor, or after the newest event
        (for every organization: the newest placed; see `place`)."""
        if not organization_id:
            if not call.caller.is_platform:
                raise PermissionDenied("only platform callers may watch every organization")
            start = cursor("")
            if start is not None:
                return start
            # "From now": after every event committed so far, so place those first.
            while self.place(call.budget) == PLACE_BATCH:
                pass
            with self._database.snapshot(call.budget) as uow:
                return FeedPosition("", uow.feed.newest_position())
        with self._database.snapshot(call.budget, cached=False) as uow:
            organization_id = authorize(uow, call.caller, organization_id, WATCH).organization_id
            start = cursor(organization_id)
            head = uow.feed.heads([organization_id]).get(organization_id, 0)
            if start is None:
                return FeedPosition(organization_id, head)
            if start.seq > head:
                raise invalid("start_cursor", "is ahead of the organization's events")
            if start.seq < head:
                _check_continues(start, uow.feed.after(organization_id, start.seq, 1))
            return start

    def read(self, call: Call, position: FeedPosition) -> list[AuditEvent]:
        """The events after `position`, in order (at most READ_BATCH)."""
        if position.every_organization:
            with self._database.snapshot(call.budget) as uow:
                return uow.feed.after_position(position.seq, READ_BATCH)
        with self._database.snapshot(call.budget, cached=False) as uow:
            authorize(uow, call.caller, position.organization_id, WATCH)
            events = uow.feed.after(position.organization_id, position.seq, READ_BATCH)
            _check_continues(position, events)
            return events

    def place(self, budget: Budget) -> int | None:
        """Gives committed events their position in the feed of every organization, at
        most PLACE_BATCH; None when another process is placing right now."""
        with self._database.snapshot(budget) as uow:
            if not uow.feed.unplaced():
                return 0  # without taking a write lock (SQLite has one for everything)
        with self._database.transaction(budget) as uow:
            placed = uow.feed.place(PLACE_BATCH)
            if placed:
                uow.commit()
            return placed

    def heads(self, budget: Budget, organization_ids: Sequence[str]) -> dict[str, int]:
        """The newest event number of each organization that still exists."""
        with self._database.snapshot(budget, cached=False) as uow:
            return uow.feed.heads(organization_ids)


def _check_continues(position: FeedPosition, events: list[AuditEvent]) -> None:
    """Events follow the position without a gap, unless some were purged."""
    if events and events[0].seq != position.seq + 1:
        raise CursorExpired()
