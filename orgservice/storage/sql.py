"""The statements of one unit of work, on one connection taken on first use.

Applies the call's budget: a transaction starts with `BEGIN` plus statement and lock
timeouts from what is left of the budget (one round trip on PostgreSQL; see `run_alone`
for a statement that is a transaction by itself), the watchdog
cuts the connection if the server stops answering, and COMMIT is never sent once the
budget is spent or the client has gone. Driver failures leave here as domain errors.
"""

from __future__ import annotations

import functools
import select
import sqlite3
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy import CursorResult
from sqlalchemy import Engine
from sqlalchemy import Executable
from sqlalchemy import Row
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from orgservice.domain.budget import COMMIT_MARGIN_SECONDS
from orgservice.domain.budget import Budget
from orgservice.domain.budget import WouldBlock
from orgservice.domain.errors import DatabaseUnavailable
from orgservice.storage.database import SQLITE_MAX_BUSY_SECONDS
from orgservice.storage.database import StaleConnection
from orgservice.storage.database import failures
from orgservice.storage.database import is_sqlite_locked
from orgservice.storage.database import translate
from orgservice.storage.sqlite_write_lock import SqliteWriteLock
from orgservice.storage.watchdog import Watch
from orgservice.storage.watchdog import Watchdog

NOTIFY_CHANNEL = "orgservice_changes"
_CHECKOUTS = "orgservice_checkouts"


class Sql:
    def __init__(
        self,
        engine: Engine,
        budget: Budget,
        watchdog: Watchdog,
        *,
        writes: bool,
        write_lock: SqliteWriteLock | None = None,
    ) -> None:
        self._engine = engine
        self._postgresql = engine.dialect.name == "postgresql"
        self._budget = budget
        self._watchdog = watchdog
        self._writes = writes
        self._write_lock = write_lock  # SQLite: taken by `_begin`, until the transaction ends
        self._held_write_lock: SqliteWriteLock | None = None
        self._connection: Connection | None = None
        self._watch: Watch | None = None
        self._statements = 0
        self._reused = False
        self._in_transaction = False
        self._ran_alone = False
        self._committed = False
        self.changed_organizations: set[str] = set()
        self._announced: set[str] = set()  # notified to the other processes on commit

    @property
    def postgresql(self) -> bool:
        return self._postgresql

    def execute(
        self,
        statement: Executable,
        parameters: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None = None,
    ) -> CursorResult[*tuple[Any, ...]]:
        connection = self._connection or self._connect()
        if self._writes and not self._in_transaction and not self._committed:
            self._begin(connection)
        try:
            result = connection.execute(statement, parameters)  # type: ignore[arg-type]
        except DBAPIError as error:
            self._raise_translated(error)
            raise
        self._statements += 1
        return result

    @property
    def may_run_alone(self) -> bool:
        """Whether `run_alone` may run now: on PostgreSQL, in a unit of work that writes
        and has no transaction open."""
        return self._postgresql and self._writes and not self._in_transaction

    def run_alone(
        self, statement: Executable, parameters: Mapping[str, Any]
    ) -> Row[*tuple[Any, ...]]:
        """Runs `statement` as a transaction of its own and returns its one row: one
        round trip instead of three (BEGIN, the statement, COMMIT); the caller then
        `commit()`s only if it wrote, else may go on. No COMMIT carries notifications:
        a statement that changes what other processes may hold sends its own
        (`pg_notify`).

        Outside a transaction block PostgreSQL runs a statement as its own transaction,
        without the budget's statement and lock timeouts. So only for statements that
        skip rows locked by others, or wait only on rows other calls hold briefly under
        budgets of their own: the watchdog cuts the connection at the deadline, but a
        statement left waiting on the server could still commit after it."""
        assert self.may_run_alone, "only outside a transaction, on PostgreSQL"
        self._budget.check(COMMIT_MARGIN_SECONDS)
        connection = self._connection or self._connect()
        # A failure may come after the statement committed, so the call is retried on
        # a fresh connection only if the server had closed this one before we sent it.
        closed_before = self._reused and _input_waiting(connection)
        try:
            row = connection.execute(statement, parameters).one()
        except DBAPIError as error:
            self._raise_translated(error, retry_safe=closed_before)
            raise
        self._statements += 1
        self._ran_alone = True
        return row

    def touch(self, organization_id: str, *, announce: bool = True) -> None:
        """Records that this transaction changes the organization: on commit, caches
        drop it here and, if `announce`, (through a notification) in every other
        process. A creation is not announced (see `organization_creation`)."""
        self.changed_organizations.add(organization_id)
        if announce:
            self._announced.add(organization_id)

    def commit(self) -> None:
        """Commits the open transaction; after `run_alone` alone, records that its
        statement committed."""
        if self._committed:
            return
        if self._ran_alone and not self._in_transaction:
            self._committed = True
            return
        self._budget.check(COMMIT_MARGIN_SECONDS)
        if self._connection is None:
            return  # nothing was written
        notify = ""
        if self._postgresql:
            # Sent with COMMIT in one round trip; ids are UUIDs the service generated or
            # validated, so they are safe as literals.
            notify = "".join(
                f"SELECT pg_notify('{NOTIFY_CHANNEL}', '{organization_id}');"
                for organization_id in sorted(self._announced)
            )
        try:
            self._connection.exec_driver_sql(notify + "COMMIT")
        except DBAPIError as error:
            self._raise_translated(error)
            raise
        self._end_write_lock()  # after a failed COMMIT, `close()` rolls back first
        self._committed = True

    def committed_organizations(self) -> set[str]:
        """The organizations a committed transaction changed (none if it did not commit)."""
        return self.changed_organizations if self._committed else set()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if not connection.invalidated:
                # Both drivers roll back only when a transaction is open (psycopg asks
                # its connection status, no round trip otherwise).
                connection.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
        except Exception:  # a broken connection: the pool must not hand it out again
            connection.invalidate()
        finally:
            self._end_write_lock()
            if self._watch is not None:
                self._watch.release()
            connection.close()

    def _connect(self) -> Connection:
        if not self._budget.may_block:
            raise WouldBlock()
        self._budget.check()
        try:
            connection = self._engine.connect()
        except DBAPIError as error:
            self._raise_translated(error)
            raise
        self._connection = connection
        self._reused = connection.info.get(_CHECKOUTS, 0) > 1
        if self._postgresql:
            driver = connection.connection.driver_connection
            self._watch = self._watchdog.watch(driver, self._budget.deadline)  # type: ignore[arg-type]
        return connection

    def _begin(self, connection: Connection) -> None:
        if not self._postgresql:
            self._begin_sqlite(connection)
            return
        remaining_ms = max(1, int(self._budget.remaining() * 1000))
        try:
            connection.exec_driver_sql(
                f"BEGIN; SET LOCAL statement_timeout = {remaining_ms};"
                f" SET LOCAL lock_timeout = {remaining_ms}"
            )
        except DBAPIError as error:
            self._raise_translated(error)
            raise
        self._in_transaction = True

    def _begin_sqlite(self, connection: Connection) -> None:
        """Writers take the write lock up front: a deferred transaction that reads and
        then writes could fail with "database is locked" instead of waiting."""
        assert self._write_lock is not None, "SQLite writers share their process's lock"
        dbapi: sqlite3.Connection = connection.connection.dbapi_connection  # type: ignore[assignment]
        try:
            self._write_lock.begin(dbapi, self._budget, SQLITE_MAX_BUSY_SECONDS)
        except sqlite3.Error as error:
            # Waiting too long says nothing of the connection: no retry on a fresh one.
            self._raise_translated(error, retry_safe=not is_sqlite_locked(error))
            raise
        self._held_write_lock = self._write_lock
        self._in_transaction = True

    def _end_write_lock(self) -> None:
        held, self._held_write_lock = self._held_write_lock, None
        if held is not None:
            held.end()

    def _raise_translated(self, error: Exception, *, retry_safe: bool = True) -> None:
        """Raises the domain error for a driver failure we expect (lost or refused
        connections, timeouts); returns for any other, which the caller re-raises."""
        fired = self._watch is not None and self._watch.fired
        translated = translate(error, deadline_passed=fired or self._budget.spent)
        if translated is None:
            return
        if isinstance(translated, DatabaseUnavailable):
            failures.warning("unavailable", error)
            if retry_safe and self._reused_connection_failed_first():
                raise StaleConnection() from error
        raise translated from error

    def _reused_connection_failed_first(self) -> bool:
        return self._reused and not self._statements


def _input_waiting(connection: Connection) -> bool:
    """Whether the server sent something to an idle connection: that it closed it (a
    restart or termination says so, then closes). A poll of the socket, no round trip;
    a connection whose socket is gone counts as closed."""
    driver = connection.connection.driver_connection
    try:
        poller = select.poll()
        poller.register(driver.pgconn.socket, select.POLLIN)  # type: ignore[union-attr]
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):
        return True


def count_checkouts(engine: Engine) -> None:
    """Counts checkouts per pooled connection, so a failure on the first statement of a
    connection that was used before can be told from a fresh one failing."""
    from sqlalchemy import event

    @event.listens_for(engine, "checkout")
    def _checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        record.info[_CHECKOUTS] = record.info.get(_CHECKOUTS, 0) + 1


def insert_if_absent(sql: Sql, table: Table, values: Mapping[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; whether the row was inserted. Decides races
    without savepoints: a concurrent insert of the same key waits for the first
    transaction and then does nothing (RETURNING, since drivers report rowcount -1)."""
    statement = _insert_if_absent(table, sql.postgresql)
    return sql.execute(statement, dict(values)).first() is not None


@functools.cache
def _insert_if_absent(table: Table, postgresql: bool) -> Executable:
    """Built once per table and dialect; the values are parameters."""
    dialect_insert = pg_insert if postgresql else sqlite_insert
    key = next(iter(table.primary_key.columns))
    return dialect_insert(table).on_conflict_do_nothing().returning(key)


class Repository:
    """Base of the repositories: statements over one unit of work's Sql."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql
