"""Random values for identifiers (ids, slug suffixes, correlation ids) from the
operating system's CSPRNG, read 4 KiB at a time.

Each `os.urandom()` is a system call that releases the GIL, and under load every
release hands the GIL to another thread: a create draws seven values and paid for them
in context switches. Reading a page at a time makes that one call per ~250 ids. Secrets
(invitation tokens, keys) do not come from here: they are drawn straight from `secrets`,
so no process memory ever holds them before they exist.
"""

from __future__ import annotations

import os
import threading

_PAGE_BYTES = 4096


class _RandomPages:
    _lock: threading.Lock
    _page: bytes
    _offset: int

    def __init__(self) -> None:
        self.forget()

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._offset + count > len(self._page):
                self._page = os.urandom(max(_PAGE_BYTES, count))
                self._offset = 0
            start = self._offset
            self._offset += count
            return self._page[start : self._offset]

    def forget(self) -> None:
        """Starts afresh: a forked child must not draw what its parent draws next."""
        self._lock = threading.Lock()
        self._page = b""
        self._offset = 0


_pages = _RandomPages()
os.register_at_fork(after_in_child=_pages.forget)


def random_bytes(count: int) -> bytes:
    return _pages.take(count)


def random_below(limit: int) -> int:
    """A uniformly drawn integer in [0, limit)."""
    if limit < 1:
        raise ValueError("limit must be positive")
    bits = (limit - 1).bit_length()
    while True:  # rejection keeps it uniform; each try succeeds with probability > 1/2
        drawn = int.from_bytes(random_bytes((bits + 7) // 8)) >> (-bits % 8)
        if drawn < limit:
            return drawn
