"""Taking SQLite's write lock without the sleeps of its busy handler.

SQLite lets one transaction write at a time. A writer that finds the lock taken waits in
SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then
100 ms between tries, however soon the lock frees. With 16 database threads creating
organizations, each transaction held the lock about a millisecond, yet the waits for it
reached 35 to 55 ms at the 90th percentile and half a second at the 99th, and the lock
sat free while its waiters slept.

So the threads of a process queue on a lock of their own, handed over the moment a
transaction ends, and only the thread at its head tries SQLite's lock, every
millisecond, against other processes (`--workers`) and other programs.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from orgservice.domain.budget import Budget

# How long SQLite's busy handler waits (one sleep) before the next try is ours.
RETRY_MILLISECONDS = 1


class SqliteWriteLock:
    """The write lock of one SQLite database, for the threads of this process."""

    def __init__(self) -> None:
        self._threads = threading.Lock()

    def begin(self, connection: sqlite3.Connection, budget: Budget, max_wait: float) -> None:
        """`BEGIN IMMEDIATE` on `connection`, waiting at most `max_wait` seconds or while
        the budget lasts, whichever ends first; then the transaction's statements wait
        for busy database files as long as that. Raises SQLite's "database is locked"
        when the wait ends first. `end()` must follow a successful begin."""
        wait = min(max_wait, budget.remaining())
        give_up = time.monotonic() + wait
        if not self._threads.acquire(timeout=wait):
            raise sqlite3.OperationalError("database is locked (by this process)")
        try:
            connection.execute(f"PRAGMA busy_timeout = {RETRY_MILLISECONDS}")
            while True:
                try:
                    connection.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) or budget.spent or time.monotonic() > give_up:
                        raise
            remaining_ms = max(1, int(min(max_wait, budget.remaining()) * 1000))
            connection.execute(f"PRAGMA busy_timeout = {remaining_ms}")
        except BaseException:
            if connection.in_transaction:
                connection.rollback()
            self._threads.release()
            raise

    def end(self) -> None:
        """After the transaction's COMMIT or ROLLBACK: the next thread's turn."""
        self._threads.release()
