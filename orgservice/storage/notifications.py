"""Changes across processes: every committed change but a creation notifies its
organization's id (`pg_notify` in the same transaction); each process LISTENs on a
direct connection (never through a transaction pooler, where LISTEN cannot work) and
reports the organization changed: the read cache drops it, the change feed wakes its
watchers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

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
                # Notifications psycopg reads while LISTEN runs come through its handler.
                connection.add_notify_handler(
                    lambda notification: self._report(notification.payload)
                )
                await connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                if connected_before:
                    # Notifications sent while the connection was down are lost.
                    self._lost()
                connected_before = True
                await _receive(connection, self._report)
            except psycopg.Error as error:
                log.info(
                    "stopped listening for changes on %s (%s); reconnecting", self._where, error
                )
                self._lost()
            finally:
                await connection.close()
            await asyncio.sleep(_RETRY_SECONDS)

    def _report(self, organization_id: str) -> None:
        """A change that could not be handled counts as a lost notification (caches drop
        everything), and the listening goes on."""
        try:
            self._changed(organization_id)
        except Exception:
            log.exception("could not handle the change of organization %s", organization_id)
            self._lost()


async def _receive(connection: psycopg.AsyncConnection[Any], report: Callable[[str], None]) -> None:
    """Reports each notification as the socket brings it, until the connection fails.
    The loop keeps one reader on the socket: psycopg's `notifies()` registers and drops
    a reader per wait, which cost about 40 us more per notification, and every process
    hears every change."""
    pgconn = connection.pgconn
    encoding = connection.info.encoding
    loop = asyncio.get_running_loop()
    failed: asyncio.Future[None] = loop.create_future()
    socket = pgconn.socket

    def readable() -> None:
        try:
            pgconn.consume_input()
            while (notification := pgconn.notifies()) is not None:
                report(notification.extra.decode(encoding))
        except psycopg.Error as error:
            # libpq has closed the socket: its number may soon belong to another one.
            loop.remove_reader(socket)
            if not failed.done():
                failed.set_exception(error)

    loop.add_reader(socket, readable)
    try:
        await failed
    finally:
        if not failed.done():  # cancelled while listening
            loop.remove_reader(socket)
