"""What `serve` and `migrate` do before anything else: wait for the database, then bring
its schema up to date (once, however many workers and replicas start)."""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from orgservice.storage import migrate
from orgservice.storage.database import EngineOptions
from orgservice.storage.database import create_database_engine

log = logging.getLogger(__name__)

_RETRY_SECONDS = 1.0


class DatabaseNotReady(Exception):
    """The database did not answer in time; the message says so in one line."""


def prepare_database(url: str, *, pooler: str = "", wait_seconds: float = 30.0) -> None:
    """Waits up to `wait_seconds` for the database, logging one line per failed
    attempt, then migrates."""
    engine = create_database_engine(url, EngineOptions(pool_size=1, pooler=pooler))
    try:
        _wait_for(engine, wait_seconds)
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def _wait_for(engine: Engine, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return
        except DBAPIError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            if time.monotonic() + _RETRY_SECONDS > deadline:
                raise DatabaseNotReady(
                    f"the database did not answer within {seconds:g}s: {reason}"
                ) from None
            log.warning("waiting for the database (attempt %d): %s", attempt, reason)
            time.sleep(_RETRY_SECONDS)
