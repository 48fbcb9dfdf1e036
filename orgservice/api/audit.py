"""ListAuditEvents and WatchEvents (the change feed)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

from orgs.v1 import organization_service_pb2 as rpc

from orgservice.api import converters
from orgservice.api.rpc_base import RpcBase
from orgservice.api.streams import Stream
from orgservice.domain.models import Call
from orgservice.service.feed import PLACE_BATCH
from orgservice.service.feed import READ_BATCH

# How soon the feed of every organization looks again when another process was placing
# events (storage.feed) and may have placed new ones since.
_PLACING_ELSEWHERE_RETRY_SECONDS = 0.1


class AuditRpcs(RpcBase):
    def ListAuditEvents(
        self, request: rpc.ListAuditEventsRequest, call: Call
    ) -> rpc.ListAuditEventsResponse:
        page, watch_from = self._services.audit.list(
            call, request.organization_id, self._page(request, call), action=request.action
        )
        response = self._listed(
            rpc.ListAuditEventsResponse, request, call, page, events=converters.fill_audit_event
        )
        response.watch_cursor = self._feed.cursors.encode(watch_from)
        return response

    async def WatchEvents(
        self, request: rpc.WatchEventsRequest, stream: Stream
    ) -> AsyncIterator[rpc.WatchEventsResponse]:
        """Replays the events after the start cursor, then waits for the organization to
        change (feed_hub) and reads again, until the caller goes away, loses access
        (the read fails) or the server stops."""
        feed, cursors = self._services.feed, self._feed.cursors
        start_cursor = request.start_cursor
        position = await stream.run(
            lambda call: feed.open(
                call,
                request.organization_id,
                lambda organization_id: cursors.decode(start_cursor, organization_id),
            )
        )
        with self._feed.hub.watching(position.organization_id) as changed:
            while True:
                changed.clear()
                placing_elsewhere = position.every_organization and not await self._place(stream)
                events = await stream.run(functools.partial(feed.read, position=position))
                for event in events:
                    position = position.after(event)
                    yield rpc.WatchEventsResponse(
                        event=converters.audit_event(event), cursor=cursors.encode(position)
                    )
                if len(events) < READ_BATCH:
                    await stream.wait(
                        changed, _PLACING_ELSEWHERE_RETRY_SECONDS if placing_elsewhere else None
                    )

    async def _place(self, stream: Stream) -> bool:
        """Places committed events in the feed of every organization; False when
        another process is placing them."""
        while True:
            placed = await stream.run(lambda call: self._services.feed.place(call.budget))
            if placed is None:
                return False
            if placed < PLACE_BATCH:
                return True
