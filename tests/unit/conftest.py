"""Unit tests: use cases over in-memory storage and pure functions; no database, no
server, no network."""

from __future__ import annotations

import pytest

from tests.unit.world import Cast
from tests.unit.world import World


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def cast(world: World) -> Cast:
    return world.cast()
