"""Random identifiers from pages of the OS's CSPRNG: well formed, never repeated, uniform,
and never shared with a forked child."""

from __future__ import annotations

import collections
import os
import threading
import uuid

import pytest

from orgservice.domain.randomness import random_below
from orgservice.domain.randomness import random_bytes
from orgservice.domain.validation import new_id


def test_uuids_are_version_4_and_distinct_across_pages_and_threads() -> None:
    drawn: list[str] = []

    def draw() -> None:
        drawn.extend(new_id() for _ in range(2_000))  # several 4 KiB pages each

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(drawn)) == len(drawn) == 8_000
    for text in drawn[:100]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text


def test_a_draw_larger_than_a_page_is_whole() -> None:
    assert len(random_bytes(10_000)) == 10_000
    assert len({random_bytes(8) for _ in range(1_000)}) == 1_000


@pytest.mark.parametrize("limit", [1, 2, 3, 36, 255, 256, 257, 36**5])
def test_random_below_stays_in_range(limit: int) -> None:
    assert all(0 <= random_below(limit) < limit for _ in range(2_000))


def test_random_below_is_uniform() -> None:
    # 6 values, 60,000 draws: each count is 10,000 with a standard deviation of ~91.
    counts = collections.Counter(random_below(6) for _ in range(60_000))
    assert set(counts) == set(range(6))
    assert all(9_500 < count < 10_500 for count in counts.values()), counts


def test_random_below_refuses_an_empty_range() -> None:
    with pytest.raises(ValueError, match="positive"):
        random_below(0)


def test_a_forked_child_draws_other_bytes_than_its_parent() -> None:
    random_bytes(1)  # the parent holds a page the child would otherwise share
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # never returns into pytest, whatever happens
        try:
            os.close(read_end)
            os.write(write_end, random_bytes(32))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        from_child = pipe.read()
    os.waitpid(child, 0)
    assert len(from_child) == 32
    assert from_child != random_bytes(32)
