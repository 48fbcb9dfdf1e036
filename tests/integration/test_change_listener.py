"""The change listener: it hears every notification, and when its connection is lost or
a change cannot be handled it says so (caches then drop everything they hold) and
listens on."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from orgservice.storage.notifications import ChangeListener
from orgservice.storage.sql import NOTIFY_CHANNEL
from tests.conftest import new_postgres_database
from tests.support.pgbouncer import direct_conninfo
from tests.support.pgbouncer import direct_url_for

pytestmark = pytest.mark.postgres_only

_WAIT_SECONDS = 10.0


async def _notify_until_heard(
    sender: psycopg.AsyncConnection[object], heard: asyncio.Queue[str], payload: str
) -> None:
    """Notifies `payload` until the listener reports it (it hears nothing until its LISTEN
    has run); fails after _WAIT_SECONDS."""
    async with asyncio.timeout(_WAIT_SECONDS):
        while True:
            await sender.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))
            try:
                while await asyncio.wait_for(heard.get(), 0.1) != payload:
                    pass
                return
            except TimeoutError:
                continue


def test_listener_hears_every_change_and_listens_again_after_losing_its_connection() -> None:
    with new_postgres_database() as url:
        conninfo = direct_conninfo(url)

        async def scenario() -> None:
            heard: asyncio.Queue[str] = asyncio.Queue()
            losses = asyncio.Queue[None]()

            def changed(organization_id: str) -> None:
                if organization_id == "unhandled":
                    raise RuntimeError("a consumer failed")
                heard.put_nowait(organization_id)

            listener = ChangeListener(
                direct_url_for(url), changed=changed, lost=lambda: losses.put_nowait(None)
            )
            listening = asyncio.create_task(listener.run())
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True
                ) as sender:
                    await _notify_until_heard(sender, heard, "before")
                    # A burst arrives whole and in order (a repeat of "before" may come first).
                    burst = [f"burst-{index}" for index in range(50)]
                    for payload in burst:
                        await sender.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))
                    received: list[str] = []
                    async with asyncio.timeout(_WAIT_SECONDS):
                        while len(received) < len(burst):
                            if (payload := await heard.get()).startswith("burst-"):
                                received.append(payload)
                    assert received == burst
                    assert losses.empty()

                    # A change its consumer fails on counts as lost; the listening goes on.
                    await sender.execute("SELECT pg_notify(%s, 'unhandled')", (NOTIFY_CHANNEL,))
                    async with asyncio.timeout(_WAIT_SECONDS):
                        await losses.get()
                    await _notify_until_heard(sender, heard, "still listening")

                    await sender.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND query = %s",
                        (f"LISTEN {NOTIFY_CHANNEL}",),
                    )
                    async with asyncio.timeout(_WAIT_SECONDS):
                        await losses.get()
                    await _notify_until_heard(sender, heard, "after")
            finally:
                listening.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await listening

        asyncio.run(scenario())
