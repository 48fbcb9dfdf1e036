"""Engines for SQLite (embedded default) and PostgreSQL, and the translation of driver
failures into domain errors.

Both engines run the driver in autocommit mode: a single-statement read is then one
round trip, and the unit of work opens transactions itself (`BEGIN` plus the call's
timeouts, in one round trip on PostgreSQL).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import make_url
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.pool import QueuePool

from orgservice.domain.errors import CallDeadlineExceeded
from orgservice.domain.errors import DatabaseUnavailable
from orgservice.domain.errors import DomainError

log = logging.getLogger(__name__)

# libpq's own minimum; the call's budget bounds waits on established connections.
CONNECT_TIMEOUT_SECONDS = 2
SQLITE_MAX_BUSY_SECONDS = 30.0


@dataclass(frozen=True)
class EngineOptions:
    pool_size: int = 16
    # "pgbouncer": transaction pooling, so no server-side prepared statements.
    pooler: str = ""
    # SQLite: commits never checkpoint the write-ahead log; the engine's owner runs a
    # `wal_checkpoints.WalCheckpointer` instead.
    background_checkpoints: bool = False
    # PostgreSQL: psycopg's async connections, used from synchronous code run in a
    # greenlet on the event loop (see `runners`). Only the server's engine.
    on_event_loop: bool = False


def is_postgresql(url: str) -> bool:
    return url.startswith("postgresql")


def create_database_engine(url: str, options: EngineOptions | None = None) -> Engine:
    options = options or EngineOptions()
    if not is_postgresql(url):
        return _sqlite_engine(url, options)
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if options.pooler == "pgbouncer":
        connect_args["prepare_threshold"] = None
    arguments: dict[str, Any] = {
        "isolation_level": "AUTOCOMMIT",
        # One connection per piece of work running at once: checkouts never wait. No
        # pre-ping: a connection that died is noticed by its first statement (see
        # StaleConnection).
        "pool_size": options.pool_size,
        "max_overflow": 0,
        "pool_timeout": CONNECT_TIMEOUT_SECONDS,
        "connect_args": connect_args,
    }
    if options.on_event_loop:
        return create_async_engine(url, **arguments).sync_engine
    return create_engine(url, **arguments)


def _sqlite_engine(url: str, options: EngineOptions) -> Engine:
    # One connection per database thread, as on PostgreSQL: checkouts never wait. A
    # database in memory has a connection per thread anyway (SingletonThreadPool).
    sqlite_url = make_url(url)
    in_file = SQLiteDialect_pysqlite.get_pool_class(sqlite_url) is QueuePool
    pool: dict[str, Any] = (
        {"pool_size": options.pool_size, "max_overflow": 0, "pool_timeout": CONNECT_TIMEOUT_SECONDS}
        if in_file
        else {}
    )
    engine = create_engine(sqlite_url, connect_args={"check_same_thread": False}, **pool)
    pragmas = ["journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"]
    if options.background_checkpoints:
        pragmas.append("wal_autocheckpoint=0")

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
        # Autocommit at the driver: the unit of work begins transactions itself.
        dbapi_connection.isolation_level = None
        # SQLite's lower() folds ASCII only; case-insensitive filters need Unicode.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)
        for pragma in pragmas:
            dbapi_connection.execute(f"PRAGMA {pragma}")

    return engine


def _lower(value: str | None) -> str | None:
    return value.lower() if isinstance(value, str) else value


def psycopg_connect_kwargs(engine: Engine) -> dict[str, Any]:
    """How the engine connects (hosts, ports, target_session_attrs…), for connections
    made outside its pool: the health probe and the notification listener."""
    _args, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs = dict(kwargs)
    # Never prepared: behind a transaction pooler the next statement may reach a
    # server connection that does not hold it (and these few statements gain nothing).
    kwargs["prepare_threshold"] = None
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    return kwargs


def sqlite_connect(engine: Engine, *, timeout: float | None = None) -> sqlite3.Connection:
    """A connection to the engine's SQLite database made outside its pool (the health
    probe, the checkpointer), opened as the engine opens its own (a relative path made
    absolute, URI options), in autocommit."""
    [database], kwargs = engine.dialect.create_connect_args(engine.url)
    options: dict[str, Any] = {**kwargs, "isolation_level": None}
    if timeout is not None:
        options["timeout"] = timeout
    connection: sqlite3.Connection = sqlite3.connect(database, **options)
    return connection


# --- driver failures ------------------------------------------------------------------


class StaleConnection(DatabaseUnavailable):
    """A pooled connection turned out dead on its first statement: nothing ran, so the
    call may be retried once on a fresh connection."""


_TIMEOUTS = (pg_errors.QueryCanceled, pg_errors.LockNotAvailable)


def translate(error: Exception, *, deadline_passed: bool) -> DomainError | None:
    """The domain error for a driver failure, or None when it is not one we expect
    (constraint violations and the like are handled where they can happen)."""
    original = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(original, _TIMEOUTS) or (deadline_passed and _is_connection_failure(original)):
        return CallDeadlineExceeded()
    if is_sqlite_locked(original):
        return CallDeadlineExceeded() if deadline_passed else DatabaseUnavailable()
    if _is_connection_failure(original):
        return DatabaseUnavailable()
    return None


def is_sqlite_locked(error: BaseException | None) -> bool:
    """SQLite's "database is locked": a wait for its write lock ended, which says
    nothing of the connection."""
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


def _is_connection_failure(error: BaseException | None) -> bool:
    if isinstance(error, psycopg.OperationalError | pg_errors.AdminShutdown):
        return True
    if isinstance(error, psycopg.Error) and error.sqlstate:
        # 08: connection exception; 57P0x: the server is shutting down or starting.
        return error.sqlstate.startswith(("08", "57P"))
    return isinstance(error, sqlite3.OperationalError) and "unable to open" in str(error)


class FailureLog:
    """One WARNING line per failure kind and second at most, and never a traceback:
    an outage must not flood the log."""

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, error: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -self._interval) < self._interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        more = f" ({suppressed} more since the last line)" if suppressed else ""
        log.warning("database %s: %s%s", kind, detail[:200], more)


failures = FailureLog()
