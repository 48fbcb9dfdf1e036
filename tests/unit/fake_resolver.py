"""An in-memory TXT resolver (`service.ports.TxtResolver`): records per name, names
whose lookup fails, and the timeouts use cases asked for."""

from __future__ import annotations

from orgservice.domain.errors import DnsUnavailable
from orgservice.service import ports


class FakeTxtResolver:
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.failing: set[str] = set()
        self.timeouts: list[float] = []  # one per lookup

    def txt_strings(self, name: str, timeout: float) -> list[str]:
        self.timeouts.append(timeout)
        if name in self.failing:
            raise DnsUnavailable()
        return list(self.records.get(name, []))


# mypy --strict checks here that the fake implements the Protocol use cases depend on.
_resolver: ports.TxtResolver = FakeTxtResolver()
