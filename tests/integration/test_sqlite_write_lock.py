"""SQLite writers wait on their process's lock and try SQLite's write lock themselves
against other processes (`storage.sqlite_write_lock`): every write commits, a writer
waits for another process's transaction as long as its call lasts and no longer, the
lock passes on however a transaction ends, the threads of a process take turns in the
order they asked and no turn is lost when a waiter's call ends (however late) or is
interrupted, a wait that reaches its cap is not taken for a dead connection, and a
failed begin leaves the connection's busy timeout as it was."""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from contextlib import closing
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from orgservice.domain.budget import COMMIT_MARGIN_SECONDS
from orgservice.domain.budget import Budget
from orgservice.domain.errors import CallDeadlineExceeded
from orgservice.domain.errors import DatabaseUnavailable
from orgservice.storage import migrate
from orgservice.storage import sql
from orgservice.storage.database import StaleConnection
from orgservice.storage.database import create_database_engine
from orgservice.storage.sqlite_write_lock import SqliteWriteLock
from orgservice.storage.tables import users
from orgservice.storage.unit_of_work import SqlDatabase
from tests.support.processes import poll
from tests.support.rows import user_row

THREADS = 16
WRITES_PER_THREAD = 20


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "writers.db"


@pytest.fixture
def database(path: Path) -> Iterator[SqlDatabase]:
    engine = create_database_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    yield SqlDatabase(engine)
    engine.dispose()


def new_user() -> dict[str, Any]:
    return user_row("writer")


def write_user(database: SqlDatabase, budget: float | Budget = 5.0) -> None:
    with database.transaction(Budget(budget) if isinstance(budget, float | int) else budget) as uow:
        uow.sql.execute(insert(users), new_user())
        uow.commit()


def user_count(database: SqlDatabase) -> int:
    with database.snapshot(Budget(5)) as uow:
        return int(uow.sql.execute(select(func.count()).select_from(users)).scalar_one())


@contextmanager
def held_by_another_process(path: Path) -> Iterator[sqlite3.Connection]:
    """SQLite's write lock, held by a connection outside the database's process lock,
    as another worker process would hold it; committed on leaving."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield connection
        connection.execute("COMMIT")
    finally:
        connection.close()


class _EndsWhileQueued(Budget):
    """A call that ends while its writer waits for its turn: `ending()` runs as the
    writer starts waiting (it may hand the turn over, or raise)."""

    def __init__(self, ending: Callable[[], None]) -> None:
        super().__init__(10)
        self._ending = ending
        self._ended = False

    def remaining(self) -> float:
        if not self._ended:
            self._ended = True
            self._ending()
        return 0.01

    @property
    def spent(self) -> bool:
        return self._ended


@contextmanager
def turn_held(lock: SqliteWriteLock, path: Path) -> Iterator[Callable[[], None]]:
    """A transaction holding the process's turn; yields what ends it (rolled back)."""
    holder = sqlite3.connect(path, isolation_level=None)
    lock.begin(holder, Budget(10), max_wait=10)

    def end() -> None:
        holder.execute("ROLLBACK")
        lock.end()

    try:
        yield end
    finally:
        holder.close()


def take_a_turn(
    lock: SqliteWriteLock, path: Path, budget: Budget, during: Callable[[], None] = lambda: None
) -> None:
    """A write transaction on a connection of its own: begun, `during()`, rolled back."""
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        lock.begin(connection, budget, max_wait=10)
        during()
        connection.execute("ROLLBACK")
        lock.end()


def next_writer_begins_at_once(lock: SqliteWriteLock, path: Path) -> bool:
    """Whether a writer gets its turn at once (a lost turn would keep it waiting)."""
    started = time.monotonic()
    take_a_turn(lock, path, Budget(1))
    return time.monotonic() - started < 0.5


def test_concurrent_writers_of_two_processes_all_commit(path: Path) -> None:
    # Two SqlDatabases on one file stand for two worker processes: each has its own
    # process lock, and they meet at SQLite's.
    engines = [create_database_engine(f"sqlite:///{path}") for _ in range(2)]
    migrate.upgrade(engines[0])
    processes = [SqlDatabase(engine) for engine in engines]
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [
                pool.submit(write_user, processes[thread % 2])
                for thread in range(THREADS)
                for _ in range(WRITES_PER_THREAD)
            ]
            for future in futures:
                future.result()
        assert user_count(processes[0]) == THREADS * WRITES_PER_THREAD
    finally:
        for engine in engines:
            engine.dispose()


def test_a_writer_waits_for_another_process_and_commits_once_it_ends(
    database: SqlDatabase, path: Path
) -> None:
    started = threading.Event()

    def write() -> float:
        started.set()
        write_user(database)
        return time.monotonic()

    with ThreadPoolExecutor(1) as pool:
        with held_by_another_process(path):
            waiting = pool.submit(write)
            assert started.wait(5)
            time.sleep(0.3)  # longer than many of the writer's tries
            released = time.monotonic()
        assert waiting.result(timeout=5) > released
    assert user_count(database) == 1


@pytest.mark.parametrize("holder", ["another process", "another thread"])
def test_a_writer_gives_up_when_its_budget_ends(
    database: SqlDatabase, path: Path, holder: str
) -> None:
    release = threading.Event()
    holding = threading.Event()

    def hold_in_this_process() -> None:
        with database.transaction(Budget(10)) as uow:
            uow.sql.execute(insert(users), new_user())
            holding.set()
            release.wait(10)  # rolled back on leaving

    with ExitStack() as held:
        if holder == "another process":
            held.enter_context(held_by_another_process(path))
        else:
            pool = held.enter_context(ThreadPoolExecutor(1))
            held.callback(release.set)
            pool.submit(hold_in_this_process)
            assert holding.wait(5)
        started = time.monotonic()
        with pytest.raises(CallDeadlineExceeded):
            write_user(database, budget=0.3)
        waited = time.monotonic() - started
    assert 0.25 < waited < 2.0, f"gave up after {waited:.2f}s on a 0.3s budget"
    assert user_count(database) == 0
    write_user(database, budget=1)  # the lock passed on
    assert user_count(database) == 1


def test_the_lock_passes_on_after_a_rollback_and_a_failed_statement(database: SqlDatabase) -> None:
    def fail_after_a_write() -> None:
        with database.transaction(Budget(5)) as uow:
            uow.sql.execute(insert(users), new_user())
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        fail_after_a_write()
    taken = insert(users).values(**new_user())
    with database.transaction(Budget(5)) as uow:
        uow.sql.execute(taken)
        uow.commit()
    with pytest.raises(IntegrityError), database.transaction(Budget(5)) as uow:
        uow.sql.execute(taken)  # its primary key is taken
    # A lock left held would make this writer wait out its budget.
    write_user(database, budget=1)
    assert user_count(database) == 2


def queued(lock: SqliteWriteLock, writers: int) -> bool:
    return len(lock._turns._waiting) == writers


def test_the_threads_of_a_process_take_turns_in_the_order_they_asked(path: Path) -> None:
    lock = SqliteWriteLock()
    served: list[int] = []

    def write(position: int) -> None:
        take_a_turn(lock, path, Budget(10), during=functools.partial(served.append, position))

    with ThreadPoolExecutor(8) as pool:
        with turn_held(lock, path) as end_turn:
            waiters = []
            for position in range(8):
                waiters.append(pool.submit(write, position))
                poll(functools.partial(queued, lock, position + 1), 5, "the writer to queue")
            # Each waiter wakes every 50 ms to look at its call: a lock that let the
            # first thread awake win would mix them up meanwhile.
            time.sleep(0.3)
            end_turn()
        for waiter in waiters:
            waiter.result(timeout=10)
    assert served == list(range(8))


def test_no_turn_is_lost_when_many_writers_give_up(database: SqlDatabase) -> None:
    def try_to_write(budget: float) -> bool:
        try:
            write_user(database, budget)
        except CallDeadlineExceeded:
            return False
        return True

    # Budgets about as long as the queue ahead (beyond the margin a commit needs): many
    # writers give up, now and then just as their turn comes (the next test makes it so).
    budgets = [COMMIT_MARGIN_SECONDS + 0.002 * (index % 20) for index in range(600)]
    with ThreadPoolExecutor(THREADS) as pool:
        written = sum(pool.map(try_to_write, budgets))
    assert user_count(database) == written
    write_user(database, budget=1)  # a lost turn would leave this one waiting its budget out
    assert user_count(database) == written + 1


def test_a_turn_handed_to_a_writer_whose_call_just_ended_passes_on(path: Path) -> None:
    lock = SqliteWriteLock()
    with closing(sqlite3.connect(path, isolation_level=None)) as late:
        with turn_held(lock, path) as end_turn, pytest.raises(sqlite3.OperationalError):
            lock.begin(late, _EndsWhileQueued(end_turn), max_wait=10)
        assert not late.in_transaction
    assert next_writer_begins_at_once(lock, path)


def test_a_writer_interrupted_while_it_waits_leaves_the_queue(path: Path) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    lock = SqliteWriteLock()
    with (
        closing(sqlite3.connect(path, isolation_level=None)) as interrupted,
        turn_held(lock, path) as end_turn,
    ):
        with pytest.raises(KeyboardInterrupt):
            lock.begin(interrupted, _EndsWhileQueued(interrupt), max_wait=10)
        end_turn()  # would hand the turn to the interrupted writer, were it queued
    assert next_writer_begins_at_once(lock, path)


def test_a_call_that_has_ended_does_not_begin_even_if_the_turn_is_free(path: Path) -> None:
    lock = SqliteWriteLock()
    ended = Budget(10)
    ended.cancel()
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        with pytest.raises(sqlite3.OperationalError, match="the call ended"):
            lock.begin(connection, ended, max_wait=10)
        assert not connection.in_transaction
    assert next_writer_begins_at_once(lock, path)


def test_a_turn_cannot_end_twice(path: Path) -> None:
    lock = SqliteWriteLock()
    with turn_held(lock, path) as end_turn:
        end_turn()
        with pytest.raises(AssertionError):
            lock.end()


def test_a_writer_whose_call_is_cancelled_stops_waiting(database: SqlDatabase, path: Path) -> None:
    """Cancelled while it tries SQLite's lock (held by another process), and while it
    waits for its turn behind another thread of its process."""
    budgets = [Budget(10), Budget(10)]

    def write(budget: Budget) -> float:
        with pytest.raises(CallDeadlineExceeded):
            write_user(database, budget)
        return time.monotonic()

    with ThreadPoolExecutor(2) as pool, held_by_another_process(path):
        trying = pool.submit(write, budgets[0])
        time.sleep(0.2)
        waiting = pool.submit(write, budgets[1])  # its turn comes after the first's
        time.sleep(0.2)
        for budget in budgets:
            budget.cancel()
        cancelled = time.monotonic()
        ended = [trying.result(timeout=5), waiting.result(timeout=5)]
    assert all(end - cancelled < 1.0 for end in ended), [end - cancelled for end in ended]
    assert user_count(database) == 0


def test_a_writer_that_waited_its_longest_is_not_retried_as_if_its_connection_died(
    database: SqlDatabase, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_user(database)  # the pool's connection has been used: a failure could look stale
    monkeypatch.setattr(sql, "SQLITE_MAX_BUSY_SECONDS", 0.3)
    with held_by_another_process(path), pytest.raises(DatabaseUnavailable) as raised:
        write_user(database)
    assert not isinstance(raised.value, StaleConnection)


def test_the_lock_passes_on_after_a_commit_refused_for_a_spent_budget(
    database: SqlDatabase,
) -> None:
    def commit_too_late() -> None:
        with database.transaction(Budget(0.2)) as uow:
            uow.sql.execute(insert(users), new_user())
            time.sleep(0.25)
            uow.commit()

    with pytest.raises(CallDeadlineExceeded):
        commit_too_late()
    write_user(database, budget=1)
    assert user_count(database) == 1


class _FailingAfterBegin(sqlite3.Connection):
    """A connection whose statement after BEGIN fails, and then its rollback."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.in_transaction and sql.startswith("PRAGMA busy_timeout ="):
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)

    def rollback(self) -> None:
        raise sqlite3.OperationalError("disk I/O error")


def test_the_lock_is_released_when_a_begun_transaction_cannot_be_set_up(path: Path) -> None:
    lock = SqliteWriteLock()
    failing = sqlite3.connect(path, isolation_level=None, factory=_FailingAfterBegin)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        lock.begin(failing, Budget(5), max_wait=5)
    failing.close()  # ends its transaction: SQLite's lock is free again
    take_a_turn(lock, path, Budget(1))  # and so is the process's


def test_a_failed_begin_leaves_the_connections_busy_timeout_as_it_was(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 4321")
        with held_by_another_process(path), pytest.raises(sqlite3.OperationalError):
            SqliteWriteLock().begin(connection, Budget(0.2), max_wait=5)
        assert connection.execute("PRAGMA busy_timeout").fetchone() == (4321,)
    finally:
        connection.close()
