"""Taking SQLite's write lock without the sleeps of its busy handler.

SQLite lets one transaction write at a time. A writer that finds the lock taken waits in
SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then
100 ms between tries, however soon the lock frees. With 16 database threads creating
organizations, each transaction held the lock about a millisecond, yet the waits for it
reached 35 to 55 ms at the 90th percentile and half a second at the 99th, and the lock
sat free while its waiters slept.

So the threads of a process wait on a lock of their own, released the moment a
transaction ends, and only the thread holding it tries SQLite's lock, every millisecond,
against other processes (`--workers`) and other programs.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from orgservice.domain.budget import Budget
from orgservice.storage.database import is_sqlite_locked

# How long SQLite's busy handler waits (one sleep) before the next try is ours.
RETRY_MILLISECONDS = 1
# A thread waiting for its turn looks this often whether its call has ended.
_TURN_CHECK_SECONDS = 0.05


def _locked(why: str) -> sqlite3.OperationalError:
    # SQLite's own wording: storage.database.translate maps it (DEADLINE_EXCEEDED once
    # the budget is spent).
    return sqlite3.OperationalError(f"database is locked ({why})")


class SqliteWriteLock:
    """The write lock of one SQLite database, for the threads of this process."""

    def __init__(self) -> None:
        self._turn = threading.Lock()

    def begin(self, connection: sqlite3.Connection, budget: Budget, max_wait: float) -> None:
        """`BEGIN IMMEDIATE` on `connection`, waiting at most `max_wait` seconds and while
        the call lasts (its budget, not cancelled); then the transaction's statements
        wait for busy database files for what is left of that. Raises SQLite's
        "database is locked" when the wait ends first. `end()` must follow a
        successful begin."""
        started = time.monotonic()
        self._take_turn(budget, started + max_wait)
        try:
            self._begin_immediate(connection, budget, started + max_wait)
            remaining_ms = max(1, int(min(max_wait, budget.remaining()) * 1000))
            connection.execute(f"PRAGMA busy_timeout = {remaining_ms}")
        except BaseException:
            try:
                if connection.in_transaction:
                    connection.rollback()
            finally:
                self._turn.release()
            raise

    def end(self) -> None:
        """After the transaction's COMMIT or ROLLBACK: the next thread's turn."""
        self._turn.release()

    def _take_turn(self, budget: Budget, give_up: float) -> None:
        while not self._turn.acquire(timeout=min(_TURN_CHECK_SECONDS, budget.remaining())):
            if budget.spent or time.monotonic() > give_up:
                raise _locked("by this process")
        if budget.spent:  # cancelled while it waited
            self._turn.release()
            raise _locked("the call ended")

    @staticmethod
    def _begin_immediate(connection: sqlite3.Connection, budget: Budget, give_up: float) -> None:
        # Readers on this pooled connection keep the busy timeout they had if it fails.
        (previous_ms,) = connection.execute("PRAGMA busy_timeout").fetchone()
        connection.execute(f"PRAGMA busy_timeout = {RETRY_MILLISECONDS}")
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if not is_sqlite_locked(error) or budget.spent or time.monotonic() > give_up:
                    connection.execute(f"PRAGMA busy_timeout = {previous_ms}")
                    raise
