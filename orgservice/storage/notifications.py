"""Changes across processes: every committed change notifies its organization's id
(`pg_notify` in the same transaction); each process LISTENs on a direct connection
(never through a transaction pooler, where LISTEN cannot work) and reports the
organization changed: the read cache drops it, the change feed wakes its watchers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy import make_url

from orgservice.storage.database import create_database_engine
from orgservice.storage.database import psycopg_connect_kwargs
from orgservice.storage.sql import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

_RETRY_SECONDS = 1.0


class ChangeListener:
    """`changed(organization_id)` for each notification; `lost()` when notifications
    may have been missed (the connection dropped), so anything may have changed."""

    def __init__(
        self, url: str, *, changed: Callable[[str], None], lost: Callable[[], None]
    ) -> None:
        engine = create_database_engine(url)
        self._kwargs = psycopg_connect_kwargs(engine)
        engine.dispose()
        self._changed = changed
        self._lost = lost
        self._where = make_url(url).render_as_string(hide_password=True)

    async def run(self) -> None:
        connected_before = False
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(**self._kwargs, autocommit=True)
            except psycopg.Error as error:
                log.debug("cannot listen for changes (%s); retrying", error)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            try:
                await connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                if connected_before:
                    # Notifications sent while the connection was down are lost.
                    self._lost()
                connected_before = True
                async for notification in connection.notifies():
                    self._changed(notification.payload)
            except psycopg.Error as error:
                log.info(
                    "stopped listening for changes on %s (%s); reconnecting", self._where, error
                )
                self._lost()
            finally:
                await connection.close()
            await asyncio.sleep(_RETRY_SECONDS)
