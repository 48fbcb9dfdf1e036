"""Both runners of database work keep one contract (`storage.runners`): at most
`concurrency` pieces of work at once; work its caller stopped waiting for never starts,
or, once started, runs on to its end and keeps its turn until then; a failure nobody
waits for any more is not reported as lost.

The work here waits with `run_coroutine`, as the DNS lookups of real use cases do: in a
greenlet on the loop (LoopRunner) or on a loop of the thread's own (ThreadRunner)."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from typing import Any

import pytest

from orgservice.storage.runners import LoopRunner
from orgservice.storage.runners import Runner
from orgservice.storage.runners import ThreadRunner
from orgservice.storage.runners import run_coroutine

RUNNERS: dict[str, Callable[[int], Runner]] = {"loop": LoopRunner, "threads": ThreadRunner}


@pytest.fixture(params=sorted(RUNNERS))
def make_runner(request: pytest.FixtureRequest) -> Callable[[int], Runner]:
    return RUNNERS[request.param]


def sleeping(seconds: float) -> None:
    run_coroutine(asyncio.sleep(seconds))


def test_at_most_concurrency_pieces_run_at_once(make_runner: Callable[[int], Runner]) -> None:
    running, peak = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        sleeping(0.05)
        with lock:
            running -= 1

    async def scenario() -> None:
        runner = make_runner(2)
        await asyncio.gather(*(runner.run(work) for _ in range(6)))

    asyncio.run(scenario())
    assert peak == 2


def test_work_its_caller_gave_up_on_runs_on_if_started_and_never_starts_if_queued(
    make_runner: Callable[[int], Runner],
) -> None:
    events: list[str] = []

    def work(name: str) -> None:
        events.append(f"{name} started")
        sleeping(0.2)
        events.append(f"{name} ended")

    async def scenario() -> None:
        runner = make_runner(1)
        started = asyncio.ensure_future(runner.run(lambda: work("started")))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(runner.run(lambda: work("queued")))
        await asyncio.sleep(0.02)
        started.cancel()
        queued.cancel()
        # The next piece waits for the turn the abandoned one still holds.
        await runner.run(lambda: work("next"))

    asyncio.run(scenario())
    assert events == ["started started", "started ended", "next started", "next ended"]


def test_a_failure_nobody_waits_for_is_not_reported_lost(
    make_runner: Callable[[int], Runner],
) -> None:
    reported: list[dict[str, Any]] = []

    def failing() -> None:
        sleeping(0.05)
        raise RuntimeError("the database went away")

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        runner = make_runner(1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(runner.run(failing), timeout=0.01)
        await asyncio.sleep(0.2)
        gc.collect()
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert reported == []
