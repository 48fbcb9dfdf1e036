"""A call's budget: how long its work may take, and whether its client gave up.

The API layer creates one per call from the client's deadline (capped by the server) and
hands it down explicitly; the unit of work applies it to every transaction (statement and
lock timeouts) and refuses to commit once it is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from orgservice.domain.errors import CallDeadlineExceeded

# A transaction whose budget has less than this left does not start its COMMIT: the
# answer could not reach the client in time, and a client that gave up must be able to
# retry safely.
COMMIT_MARGIN_SECONDS = 0.05


class WouldBlock(Exception):
    """Raised instead of doing I/O under a budget that must not block (see `no_io`)."""


class _Cancellation:
    """Set once, read from any thread (a plain attribute: no one waits on it)."""

    __slots__ = ("is_set",)

    def __init__(self) -> None:
        self.is_set = False


class Budget:
    """A deadline on the monotonic clock plus a cancellation flag, safe across threads."""

    def __init__(
        self, seconds: float, *, may_block: bool = True, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.deadline = clock() + seconds
        self.may_block = may_block
        self._cancelled = _Cancellation()

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.deadline - self._clock())

    def cancel(self) -> None:
        """The client went away: whatever the call still does is wasted."""
        self._cancelled.is_set = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set

    @property
    def spent(self) -> bool:
        return self.cancelled or self.remaining() <= 0

    def check(self, margin: float = 0.0) -> None:
        """Raises DEADLINE_EXCEEDED when less than `margin` seconds are left or the
        client cancelled."""
        if self.cancelled or self.remaining() <= margin:
            raise CallDeadlineExceeded()

    def no_io(self) -> Budget:
        """The same budget for a first attempt that must answer from memory: storage
        raises WouldBlock where it would otherwise touch the database."""
        twin = Budget(0, may_block=False, clock=self._clock)
        twin.deadline = self.deadline
        twin._cancelled = self._cancelled
        return twin


def unlimited(seconds: float = 3600.0) -> Budget:
    """A budget for work no client waits on (start-up, the purge job, tests)."""
    return Budget(seconds)
