"""Server-streaming RPCs: what a streaming method gets in place of a `Call`.

A streaming RPC method is `async def Rpc(self, request, stream: Stream)` yielding its
responses. A stream is not capped as a whole; each piece of database work it does
(`stream.run`) is a use case of its own with a budget of at most --max-call-seconds. All
streams together hold at most a few of the turns for database work (--threads) at once,
so open streams never starve unary calls. When the server stops, `run` and `wait` raise
ShuttingDown (UNAVAILABLE), and clients resume elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from orgservice.domain.budget import Budget
from orgservice.domain.errors import ShuttingDown
from orgservice.domain.models import Call
from orgservice.domain.models import Caller

T = TypeVar("T")
RunWork = Callable[[Budget, Callable[[], Any]], Awaitable[Any]]


class Streams:
    """What every stream of one server shares: the turns for database work they may
    hold at once, the per-transaction budget and the shutdown signal."""

    def __init__(self, *, run: RunWork, turns: int, max_call_seconds: float) -> None:
        self._run = run
        self._turns = asyncio.Semaphore(turns)
        self._max_call_seconds = max_call_seconds
        self.stopping = asyncio.Event()

    def budget(self) -> Budget:
        return Budget(self._max_call_seconds)

    async def run(self, work: Callable[[Budget], T]) -> T:
        """Runs `work(budget)` as database work, waiting for a turn among streams."""
        if self.stopping.is_set():
            raise ShuttingDown()
        async with self._turns:
            budget = self.budget()
            result: T = await self._run(budget, functools.partial(work, budget))
            return result

    def stop(self) -> None:
        """Ends every stream at its next step (the server is shutting down)."""
        self.stopping.set()


class Stream:
    """One open stream: its caller, database work on its behalf, and waiting."""

    def __init__(self, caller: Caller, streams: Streams) -> None:
        self.caller = caller
        self._streams = streams

    async def run(self, work: Callable[[Call], T]) -> T:
        """Runs `work` (a use case) as database work with a fresh budget."""
        caller = self.caller
        return await self._streams.run(lambda budget: work(Call(caller, budget)))

    async def wait(self, event: asyncio.Event, timeout: float | None = None) -> None:
        """Until `event` is set or `timeout` passes; raises ShuttingDown when the server
        stops meanwhile."""
        stopping = self._streams.stopping
        waiters = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(stopping.wait())}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if stopping.is_set():
            raise ShuttingDown()
