"""Cuts PostgreSQL connections whose call ran out of time.

Server-side timeouts (`statement_timeout`, `lock_timeout`) end a slow statement on a live
server, but a server that hangs (frozen, or a network that drops packets) answers
nothing, not even a cancel request: the driver would wait forever. The watchdog shuts
the socket down under the blocked driver instead, which makes it fail at once; the pool
then discards the connection.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import psycopg

# How long after the call's deadline a connection is cut: the server's own timeout
# normally ends the statement first, with a clean error and a reusable connection.
GRACE_SECONDS = 0.15


@dataclass(order=True)
class _Watch:
    due: float
    number: int
    connection: psycopg.BaseConnection[Any] = field(compare=False)
    fired: bool = field(default=False, compare=False)
    done: bool = field(default=False, compare=False)


class Watch:
    """One connection under watch until `release()`; `fired` tells whether it was cut."""

    def __init__(self, watchdog: Watchdog, entry: _Watch) -> None:
        self._watchdog = watchdog
        self._entry = entry

    @property
    def fired(self) -> bool:
        return self._entry.fired

    def release(self) -> None:
        self._watchdog._release(self._entry)


class Watchdog:
    """One thread per process, sleeping until the earliest deadline."""

    def __init__(self) -> None:
        self._heap: list[_Watch] = []
        self._active: set[int] = set()
        self._entries: dict[int, _Watch] = {}
        self._numbers = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, connection: psycopg.BaseConnection[Any], deadline: float) -> Watch:
        """Cuts `connection` if it is still watched GRACE_SECONDS after `deadline`
        (monotonic clock)."""
        entry = _Watch(deadline + GRACE_SECONDS, next(self._numbers), connection)
        with self._condition:
            heapq.heappush(self._heap, entry)
            self._entries[entry.number] = entry
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:
                self._condition.notify()
        return Watch(self, entry)

    def cut_all(self) -> None:
        """Cuts every watched connection now (shutdown: nothing may hang past it)."""
        with self._condition:
            entries = list(self._entries.values())
        for entry in entries:
            self._cut(entry)

    def _release(self, entry: _Watch) -> None:
        with self._condition:
            entry.done = True
            self._entries.pop(entry.number, None)

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._heap and self._heap[0].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0].due - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                entry = heapq.heappop(self._heap)
            self._cut(entry)

    def _cut(self, entry: _Watch) -> None:
        # Under the lock: a released connection may go back to the pool and serve
        # another call, which must never be cut.
        with self._condition:
            if entry.done or entry.fired:
                return
            entry.fired = True
            try:
                fd = entry.connection.pgconn.socket
            except psycopg.OperationalError:
                return  # closed already
            # shutdown() acts on the socket itself, so doing it through a duplicate of
            # the descriptor wakes the thread blocked on the original.
            with (
                contextlib.suppress(OSError),
                socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as duplicate,
            ):
                duplicate.shutdown(socket.SHUT_RDWR)
