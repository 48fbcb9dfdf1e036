"""Checkpoints of SQLite's write-ahead log, off the request path.

By default the commit that grows the log past 1,000 pages copies the log back into the
database file and syncs it before its call can answer. Creating an organization writes
some 35 pages, so about every 30th create waited 10 to 25 ms longer, and every other
writer, in any process, waited behind it. The server's connections turn those automatic
checkpoints off (`wal_autocheckpoint=0`); a thread of each process checkpoints instead,
passively (waiting for no reader or writer), every half second.
"""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy import Engine

from orgservice.storage.database import failures

# A shorter interval copies the same hot pages (indexes, a table's last page) more
# often; a longer one lets the log grow larger between checkpoints.
CHECKPOINT_INTERVAL_SECONDS = 0.5
# Shutdown waits this long at most for a checkpoint under way (the thread is a daemon).
_STOP_WAIT_SECONDS = 2.0


class WalCheckpointer:
    """One thread, with a connection of its own, checkpointing until `stop()`."""

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        self._path = path
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)

    @classmethod
    def for_engine(cls, engine: Engine) -> WalCheckpointer | None:
        """The checkpointer an engine made with `background_checkpoints` needs: None
        unless it is a SQLite database in a file."""
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        return cls(database)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(_STOP_WAIT_SECONDS)

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stopping.wait(self._interval):
                try:
                    # PASSIVE never waits: frames a reader still needs wait for the next one.
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:
                    failures.warning("checkpoint", error)
        finally:
            connection.close()
