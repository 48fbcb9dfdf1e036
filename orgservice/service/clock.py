"""Time as the use cases see it; injectable so tests can move it."""

from collections.abc import Callable
from datetime import UTC
from datetime import datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)
