"""SQLite's write-ahead log is checkpointed by a thread of the server, never by the
commit of a call (see orgservice.storage.wal_checkpoints)."""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy import text

from orgservice.storage.database import EngineOptions
from orgservice.storage.database import create_database_engine
from orgservice.storage.wal_checkpoints import WalCheckpointer
from tests.conftest import settings_for
from tests.conftest import start_api
from tests.support.processes import poll

# Rows of 4 KiB: each takes a page of the log, so 1,500 of them pass the 1,000 pages
# at which a commit would checkpoint by itself.
ROW = "x" * 4000
ROWS = 1500
# The database file holds at least this much once a checkpoint has copied the log.
CHECKPOINTED_BYTES = 1000 * 4000


def _engine(path: Path, *, background_checkpoints: bool) -> Engine:
    return create_database_engine(
        f"sqlite:///{path}", EngineOptions(background_checkpoints=background_checkpoints)
    )


def _fill(engine: Engine) -> None:
    """Commits ROWS rows, a hundred a transaction."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE filler (value TEXT NOT NULL)"))
    for _ in range(ROWS // 100):
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO filler (value) VALUES (:value)"), [{"value": ROW}] * 100
            )


def _checkpoint_threads() -> set[threading.Thread]:
    """Servers of other tests run checkpointers of their own."""
    return {thread for thread in threading.enumerate() if thread.name == "wal-checkpoints"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_commits_checkpoint_the_log_unless_the_engine_leaves_it_to_a_checkpointer(
    tmp_path: Path,
) -> None:
    for background, grows in ((False, True), (True, False)):
        path = tmp_path / f"background-{background}.db"
        engine = _engine(path, background_checkpoints=background)
        try:
            _fill(engine)
            # The database file holds the rows only once a checkpoint copied them there.
            assert (path.stat().st_size > CHECKPOINTED_BYTES) is grows
        finally:
            engine.dispose()


def test_the_checkpointer_copies_the_log_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "checkpointed.db"
    engine = _engine(path, background_checkpoints=True)
    try:
        _fill(engine)
        assert path.stat().st_size < CHECKPOINTED_BYTES
        checkpointer = WalCheckpointer.for_engine(engine)
        assert checkpointer is not None
        others = _checkpoint_threads()
        checkpointer.start()
        try:
            poll(lambda: path.stat().st_size > ROWS * 4000, 10, "a checkpoint of every row")
        finally:
            checkpointer.stop()
        poll(lambda: _checkpoint_threads() <= others, 10, "the checkpointer's thread to end")
    finally:
        engine.dispose()


def test_no_checkpointer_for_postgresql_or_a_database_in_memory() -> None:
    for url in ("sqlite://", "postgresql+psycopg://postgres@127.0.0.1:1/none"):
        engine = create_database_engine(url)
        try:
            assert WalCheckpointer.for_engine(engine) is None
        finally:
            engine.dispose()


def test_the_server_checkpoints_what_its_calls_wrote(tmp_path: Path, dev_key_file: Path) -> None:
    path = tmp_path / "served.db"
    others = _checkpoint_threads()
    with contextmanager(start_api)(settings_for(f"sqlite:///{path}", dev_key_file)) as api:
        with api.server.database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        client = api.client()
        before = _digest(path)
        # Fewer pages than a commit would checkpoint at: only the server's thread copies
        # them into the database file while its connections stay open.
        for index in range(10):
            client.create_org(f"Checkpointed {index}")
        poll(lambda: _digest(path) != before, 10, "the server's checkpoint")
    poll(lambda: _checkpoint_threads() <= others, 10, "the server's checkpointer to end")
