"""Taking SQLite's write lock without the sleeps of its busy handler.

SQLite lets one transaction write at a time. A writer that finds the lock taken waits in
SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then
100 ms between tries, however soon the lock frees. With 16 database threads creating
organizations, each transaction held the lock about a millisecond, yet the waits for it
reached 35 to 55 ms at the 90th percentile and half a second at the 99th, and the lock
sat free while its waiters slept.

So the threads of a process wait for their turn, which passes on the moment a
transaction ends, and only the thread whose turn it is tries SQLite's lock, every
millisecond, against other processes (`--workers`) and other programs.

Turns are taken in the order they were asked for. With a plain lock, the thread the
scheduler happened to wake won, and under load some writers were overtaken again and
again: at full rate (one worker, 16 database threads) creates had a p99 of 260 to 310 ms
against a p50 of 57; taken in order, 89 to 98 ms.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque

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


class _Turns:
    """A lock handed to its waiters first come, first served: each waiter blocks on a
    lock of its own (its baton), which the thread ending its turn releases, waking that
    one thread. A waiter whose call ends first leaves the queue, or passes the turn on
    if it came meanwhile."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._taken = False
        self._waiting: deque[threading.Lock] = deque()

    def take(self, budget: Budget, give_up: float) -> None:
        """Returns once it is this thread's turn (`pass_on()` must follow). Raises
        SQLite's "database is locked" if the call has ended (budget spent or cancelled),
        or if it ends or `give_up` passes before the turn comes (noticed within
        _TURN_CHECK_SECONDS)."""
        with self._guard:
            if budget.spent:
                raise _locked("the call ended")
            if not self._taken:
                self._taken = True
                return
            baton = threading.Lock()
            baton.acquire()
            self._waiting.append(baton)
        try:
            _wait(baton, budget, give_up)
        except BaseException:
            self._give_back(baton)
            raise

    def pass_on(self) -> None:
        """Ends this thread's turn: the longest waiter's begins."""
        with self._guard:
            assert self._taken, "a turn passed on twice"
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._taken = False

    def _give_back(self, baton: threading.Lock) -> None:
        """Leaves the queue, or passes the turn on if it came meanwhile."""
        with self._guard:
            if baton in self._waiting:
                self._waiting.remove(baton)
                return
        self.pass_on()


def _wait(baton: threading.Lock, budget: Budget, give_up: float) -> None:
    """Until the turn comes (the baton is released), looking every _TURN_CHECK_SECONDS
    whether the call has ended meanwhile."""
    while not baton.acquire(timeout=min(_TURN_CHECK_SECONDS, budget.remaining())):
        if budget.spent or time.monotonic() > give_up:
            raise _locked("by this process")
    if budget.spent:  # cancelled just as its turn came
        raise _locked("the call ended")


class SqliteWriteLock:
    """The write lock of one SQLite database, for the threads of this process."""

    def __init__(self) -> None:
        self._turns = _Turns()

    def begin(self, connection: sqlite3.Connection, budget: Budget, max_wait: float) -> None:
        """`BEGIN IMMEDIATE` on `connection`, waiting at most `max_wait` seconds and while
        the call lasts (its budget, not cancelled); then the transaction's statements
        wait for busy database files for what is left of that. Raises SQLite's
        "database is locked" when the wait ends first. `end()` must follow a
        successful begin."""
        started = time.monotonic()
        self._turns.take(budget, started + max_wait)
        try:
            self._begin_immediate(connection, budget, started + max_wait)
            remaining_ms = max(1, int(min(max_wait, budget.remaining()) * 1000))
            connection.execute(f"PRAGMA busy_timeout = {remaining_ms}")
        except BaseException:
            try:
                if connection.in_transaction:
                    connection.rollback()
            finally:
                self._turns.pass_on()
            raise

    def end(self) -> None:
        """After the transaction's COMMIT or ROLLBACK: the next thread's turn."""
        self._turns.pass_on()

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
