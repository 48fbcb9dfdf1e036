"""Wakes the streams that watch an organization when it may have changed.

- At once for changes committed in this process (the unit of work reports them) and,
  through PostgreSQL notifications, for changes committed in other processes.
- By polling otherwise: every `poll_seconds` one query reads the newest event number of
  every watched organization and wakes the streams of those that moved (or vanished).
  Without a listen connection (SQLite, PgBouncer without --database-listen-url) this is
  how changes from other processes arrive, within a second; with one it only covers
  notifications lost while the connection was down.
- Streams that watch every organization are woken every `EVERY_ORGANIZATION_SECONDS`
  whatever the notifications: a creation notifies no other process (see
  `storage.organization_creation`), and they are the only ones it concerns there.

A woken stream reads the audit log after its position; a wake-up that finds nothing
costs one short read, so waking too often is harmless and never waking is not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager

from orgservice.domain.errors import DomainError

log = logging.getLogger(__name__)

EVERY_ORGANIZATION = ""
# Well within the second in which new events, creations included, must reach watchers.
EVERY_ORGANIZATION_SECONDS = 0.5
# The newest event number of each watched organization that still exists.
Heads = Callable[[list[str]], Awaitable[dict[str, int]]]


class FeedHub:
    def __init__(self, heads: Heads, *, poll_seconds: float) -> None:
        self._heads = heads
        self.poll_seconds = poll_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._seen: dict[str, int | None] = {}
        self.opened = 0  # streams that started watching, ever (tests wait on it)

    @contextmanager
    def watching(self, organization_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the organization (EVERY_ORGANIZATION: any) may have
        changed; clear it before reading, then wait for it."""
        self._loop = asyncio.get_running_loop()
        event = asyncio.Event()
        self._watchers.setdefault(organization_id, set()).add(event)
        self.opened += 1
        try:
            yield event
        finally:
            watchers = self._watchers[organization_id]
            watchers.discard(event)
            if not watchers:
                del self._watchers[organization_id]
                self._seen.pop(organization_id, None)

    def changed(self, organization_id: str) -> None:
        """The organization changed (callable from any thread). Without a watcher of it,
        there is no one to wake: one who starts watching later reads after this commit."""
        if organization_id in self._watchers or EVERY_ORGANIZATION in self._watchers:
            self._call_soon(self._wake, organization_id)

    def everything_changed(self) -> None:
        """Anything may have changed, e.g. notifications were lost (any thread)."""
        self._call_soon(self._wake_all)

    async def poll(self) -> None:
        """Runs until cancelled: wakes watchers of organizations whose newest event moved,
        and watchers of every organization on each tick."""
        ticks_per_poll = max(1, round(self.poll_seconds / EVERY_ORGANIZATION_SECONDS))
        tick = min(self.poll_seconds, EVERY_ORGANIZATION_SECONDS)
        ticks = 0
        while True:
            await asyncio.sleep(tick)
            self._wake_everything_watchers()
            ticks += 1
            if ticks % ticks_per_poll:
                continue
            watched = [key for key in self._watchers if key != EVERY_ORGANIZATION]
            if not watched:
                continue
            try:
                heads = await self._heads(watched)
            except DomainError as error:  # the database is unavailable: streams fail too
                log.debug("feed poll failed: %s", error.message)
                continue
            for organization_id in watched:
                head = heads.get(organization_id)
                if self._seen.get(organization_id, -1) != head:
                    self._seen[organization_id] = head
                    self._wake(organization_id)

    def _call_soon(self, callback: Callable[..., None], *args: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback, *args)

    def _wake(self, organization_id: str) -> None:
        for event in self._watchers.get(organization_id, ()):
            event.set()
        self._wake_everything_watchers()

    def _wake_everything_watchers(self) -> None:
        for event in self._watchers.get(EVERY_ORGANIZATION, ()):
            event.set()

    def _wake_all(self) -> None:
        for watchers in self._watchers.values():
            for event in watchers:
                event.set()
