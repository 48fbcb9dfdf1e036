"""Checkpoints of SQLite's write-ahead log, off the request path.

By default the commit that grows the log past 1,000 pages copies the log back into the
database file and syncs it before its call can answer. Creating an organization writes
some 35 pages, so about every 30th create waited 10 to 25 ms longer, and the copying and
syncing slowed every other write meanwhile. The server's connections turn those
automatic checkpoints off (`wal_autocheckpoint=0`); a thread of each process checkpoints
instead, passively (waiting for no reader or writer), every half second.
"""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from orgservice.storage.database import failures
from orgservice.storage.database import sqlite_connect

# A shorter interval copies the same hot pages (indexes, a table's last page) more
# often; a longer one lets the log grow larger between checkpoints.
CHECKPOINT_INTERVAL_SECONDS = 0.5


class WalCheckpointer:
    """One thread, with a connection of its own, checkpointing until `stop()`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)

    @classmethod
    def for_engine(cls, engine: Engine) -> WalCheckpointer | None:
        """The checkpointer an engine made with `background_checkpoints` needs: None
        unless it is a SQLite database in a file (which SQLAlchemy pools in a QueuePool)."""
        if engine.dialect.name != "sqlite" or not isinstance(engine.pool, QueuePool):
            return None
        return cls(engine)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the thread after the checkpoint under way, if any (without waiting for
        it: shutdown must not)."""
        self._stopping.set()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        while not self._stopping.wait(CHECKPOINT_INTERVAL_SECONDS):
            try:
                if connection is None:
                    connection = sqlite_connect(self._engine)
                # PASSIVE never waits: frames a reader still needs wait for the next one.
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except Exception as error:
                # Automatic checkpoints are off: this thread must not end before the
                # server does, so any failure waits for the next round.
                failures.warning("checkpoint", error)
                if connection is not None:
                    connection.close()
                    connection = None
        if connection is not None:
            connection.close()
