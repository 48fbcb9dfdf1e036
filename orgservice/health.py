"""Readiness: NOT_SERVING while the database cannot be reached, SERVING once it can.

Liveness (the empty service name) never depends on the database: an orchestrator must
not restart pods because the database is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from collections.abc import Coroutine
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 1.0
Probe = Callable[[], Coroutine[Any, Any, None]]


class DatabaseHealth:
    """Probes the database every `interval` seconds. A probe that has not answered
    within PROBE_TIMEOUT_SECONDS counts as a failure at once; it is left to finish on
    its own (a hung server may take long to give up), and no other starts meanwhile."""

    def __init__(
        self,
        probe: Probe,
        health: HealthServicer,
        service: str,
        *,
        interval: float,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._on_change = on_change
        self._probe = probe
        self._health = health
        self._service = service
        self._interval = interval
        self._pending: asyncio.Task[None] | None = None
        self._serving: bool | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def check(self) -> None:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._probe())
        done, _ = await asyncio.wait({self._pending}, timeout=PROBE_TIMEOUT_SECONDS)
        serving = bool(done) and self._pending.exception() is None
        if serving != self._serving:
            (log.info if serving else log.warning)(
                "database %s", "reachable: SERVING" if serving else "unreachable: NOT_SERVING"
            )
            self._serving = serving
            if self._on_change is not None:
                self._on_change(serving)
            status = health_pb2.HealthCheckResponse
            await self._health.set(self._service, status.SERVING if serving else status.NOT_SERVING)
