"""FeedHub's polling: watchers of every organization are woken on every tick, while the
newest events of watched organizations are read only every `poll_seconds`."""

from __future__ import annotations

import asyncio

import pytest

from orgservice.api import feed_hub
from orgservice.api.feed_hub import EVERY_ORGANIZATION
from orgservice.api.feed_hub import FeedHub

TICK = 0.02


async def _times_woken(hub: FeedHub, seconds: float) -> int:
    """How many times a watcher of every organization is woken in `seconds` of polling,
    while another stream watches one organization."""
    woken = 0
    with hub.watching(EVERY_ORGANIZATION) as everything, hub.watching("org-1"):
        polling = asyncio.create_task(hub.poll())
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            everything.clear()
            try:
                await asyncio.wait_for(everything.wait(), left)
            except TimeoutError:
                break
            woken += 1
        polling.cancel()
    return woken


def test_watchers_of_every_organization_are_woken_each_tick_and_heads_read_each_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed_hub, "EVERY_ORGANIZATION_SECONDS", TICK)
    heads_read: list[int] = []

    async def heads(organization_ids: list[str]) -> dict[str, int]:
        heads_read.append(len(organization_ids))
        return {}

    hub = FeedHub(heads, poll_seconds=TICK * 10)
    woken = asyncio.run(_times_woken(hub, TICK * 30))

    assert woken >= 10, "woken about once a tick (30 ticks)"
    assert 1 <= len(heads_read) <= 4, "heads read about once every ten ticks (3 times)"
