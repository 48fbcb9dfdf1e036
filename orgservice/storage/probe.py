"""The readiness probe: `SELECT 1` on a connection of its own, never one from the
request pool (which may be exhausted, or hold connections the probe would wait for)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from collections.abc import Coroutine
from contextlib import closing
from typing import Any

import psycopg
from sqlalchemy import Engine

from orgservice.storage.database import psycopg_connect_kwargs
from orgservice.storage.database import sqlite_connect


def database_probe(engine: Engine) -> Callable[[], Coroutine[Any, Any, None]]:
    """A coroutine function that raises unless the database answers."""
    if engine.dialect.name == "postgresql":
        return _PostgresProbe(psycopg_connect_kwargs(engine)).probe

    async def probe_sqlite() -> None:
        def select_one() -> None:
            with closing(sqlite_connect(engine, timeout=1)) as connection:
                connection.execute("SELECT 1")

        await asyncio.to_thread(select_one)

    return probe_sqlite


class _PostgresProbe:
    """Keeps one connection while it works, and makes a new one after any failure."""

    def __init__(self, connect_kwargs: dict[str, Any]) -> None:
        self._kwargs = connect_kwargs
        self._connection: psycopg.AsyncConnection[object] | None = None

    async def probe(self) -> None:
        try:
            if self._connection is None or self._connection.closed:
                self._connection = await psycopg.AsyncConnection.connect(
                    **self._kwargs, autocommit=True
                )
            await self._connection.execute("SELECT 1")
        except BaseException:
            connection, self._connection = self._connection, None
            if connection is not None:
                await connection.close()
            raise
