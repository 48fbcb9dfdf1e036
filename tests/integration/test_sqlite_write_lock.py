"""SQLite writers queue on their process's lock and try SQLite's write lock themselves
against other processes (`storage.sqlite_write_lock`): every write commits, a writer
waits for another process's transaction as long as its budget lets it and no longer,
and the lock passes on however a transaction ends."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from orgservice.domain.budget import Budget
from orgservice.domain.errors import CallDeadlineExceeded
from orgservice.storage import migrate
from orgservice.storage.database import create_database_engine
from orgservice.storage.tables import users
from orgservice.storage.unit_of_work import SqlDatabase

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
    now = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "subject": f"writer-{uuid.uuid4().hex}",
        "username": "",
        "email": "",
        "email_verified": False,
        "display_name": "",
        "create_time": now,
        "update_time": now,
    }


def write_user(database: SqlDatabase, budget: float = 5.0) -> None:
    with database.transaction(Budget(budget)) as uow:
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
    with ThreadPoolExecutor(1) as pool:
        with held_by_another_process(path):
            waiting = pool.submit(write_user, database)
            time.sleep(0.3)  # longer than many of the writer's tries
            assert not waiting.done(), "the writer did not wait for the other process"
        waiting.result(timeout=5)
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
