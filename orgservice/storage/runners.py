"""Where the server runs database work (use cases are synchronous code).

SQLite's driver blocks, so its work runs on a pool of threads. On PostgreSQL the work runs
on the event loop itself, in a greenlet (SQLAlchemy's asyncio bridge): the use case stays
synchronous, and psycopg's async connection waits for the server on the loop. A call then
needs no hand-off to a thread and back, nor the GIL handovers between the loop and the
threads: side by side, 18% more creates a second with two workers, and GetOrganization
without the read cache 54% more (docs/performance.md).

Either way at most `concurrency` (--threads) pieces of work run at once, each holding at
most one pooled connection. Work that has not started when its caller stops waiting never
starts; work that has started runs on until it ends or the watchdog cuts its connection,
and the caller's cancelled budget keeps it from committing.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from typing import Protocol
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.util import await_
from sqlalchemy.util import greenlet_spawn

T = TypeVar("T")


class Runner(Protocol):
    async def run(self, work: Callable[[], T]) -> T:
        """`work`'s result; it runs in a copy of the caller's context (its call)."""

    async def close(self, engine: Engine) -> None:
        """Lets the engine's connections go; work still running is abandoned."""


def runner_for(engine: Engine, concurrency: int) -> Runner:
    if engine.dialect.is_async:
        return LoopRunner(concurrency)
    return ThreadRunner(concurrency)


class ThreadRunner:
    def __init__(self, concurrency: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rpc")

    async def run(self, work: Callable[[], T]) -> T:
        # Cancelling the future drops work still queued; a thread already running it
        # runs on. A thread has no context of its own: it gets the caller's, as a task.
        in_context = functools.partial(contextvars.copy_context().run, work)
        return await asyncio.get_running_loop().run_in_executor(self._executor, in_context)

    async def close(self, engine: Engine) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        engine.dispose()


class LoopRunner:
    """Work in greenlets on the running loop, for an engine with an asyncio driver."""

    def __init__(self, concurrency: int) -> None:
        self._turns = asyncio.Semaphore(concurrency)
        # The loop holds tasks weakly: work nobody waits for any more is kept here.
        self._running: set[asyncio.Future[Any]] = set()

    async def run(self, work: Callable[[], T]) -> T:
        await self._turns.acquire()
        try:
            task = asyncio.ensure_future(greenlet_spawn(work))  # in a copy of the context
        except BaseException:
            self._turns.release()
            raise
        self._running.add(task)
        task.add_done_callback(self._finished)
        # A caller that stops waiting (deadline, cancellation) must not interrupt the
        # work midway, inside the driver: it ends as a thread's would.
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._running.discard(task)
        self._turns.release()
        if not task.cancelled():
            task.exception()  # seen, also when its caller stopped waiting

    async def close(self, engine: Engine) -> None:
        await greenlet_spawn(engine.dispose)


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result, for database work (synchronous code) that must wait on
    something else than the database: awaited on the running loop when the work runs in
    a greenlet on it, else on an event loop of this thread's own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    return await_(coroutine)
