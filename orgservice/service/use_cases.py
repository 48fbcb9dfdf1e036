"""What every use-case service holds: the database and the clock."""

from __future__ import annotations

from orgservice.service.clock import Clock
from orgservice.service.clock import system_clock
from orgservice.service.ports import Database


class UseCases:
    def __init__(self, database: Database, clock: Clock = system_clock) -> None:
        self._database = database
        self._clock = clock
