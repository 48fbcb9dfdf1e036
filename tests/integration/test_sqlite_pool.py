"""A SQLite engine holds a connection for each database thread, as a PostgreSQL one does:
a call never waits for a connection, which no budget would bound."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from orgservice.storage.database import EngineOptions
from orgservice.storage.database import create_database_engine

THREADS = 16


def test_every_database_thread_gets_a_connection_at_once(tmp_path: Path) -> None:
    engine = create_database_engine(
        f"sqlite:///{tmp_path / 'pool.db'}", EngineOptions(pool_size=THREADS)
    )
    try:
        with ExitStack() as held:
            connections = [held.enter_context(engine.connect()) for _ in range(THREADS)]
            assert [c.execute(text("SELECT 1")).scalar() for c in connections] == [1] * THREADS
            # No more: a checkout beyond them fails within the pool timeout.
            with pytest.raises(PoolTimeout):
                engine.connect()
    finally:
        engine.dispose()
