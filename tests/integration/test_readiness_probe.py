"""The readiness probe behind PgBouncer in transaction pooling mode, where consecutive
statements of one client connection may run on different server connections."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import make_url

from orgservice.storage.database import EngineOptions
from orgservice.storage.database import create_database_engine
from orgservice.storage.probe import database_probe
from tests.support.pgbouncer import PgBouncer

# psycopg prepares a statement on the server after this many runs (its default).
_PSYCOPG_PREPARE_THRESHOLD = 5


@pytest.mark.postgres_only
def test_probe_keeps_answering_when_pgbouncer_moves_it_to_another_server_connection(
    postgres_url: str, pgbouncer: PgBouncer
) -> None:
    engine = create_database_engine(
        pgbouncer.url(make_url(postgres_url).database or ""), EngineOptions(pooler="pgbouncer")
    )
    probe = database_probe(engine)

    async def probe_while_another_client_holds_its_server_connection() -> None:
        for _ in range(_PSYCOPG_PREPARE_THRESHOLD + 2):
            await probe()
        async with await psycopg.AsyncConnection.connect(
            pgbouncer.conninfo(make_url(postgres_url).database or ""), prepare_threshold=None
        ) as other:
            # An open transaction keeps the server connection the probe used last
            # (PgBouncer hands out the most recently released one first).
            await other.execute("SELECT 1")
            for _ in range(3):
                await probe()  # raised "prepared statement does not exist" before

    try:
        asyncio.run(probe_while_another_client_holds_its_server_connection())
    finally:
        engine.dispose()
