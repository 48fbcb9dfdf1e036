"""The development key: created once, whoever asks first, and the same for everyone."""

from __future__ import annotations

import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orgservice import devkeys

RACERS = 8
ROUNDS = 40


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_creators_racing_share_one_key_and_never_read_half_of_it(tmp_path: Path) -> None:
    """Servers started at once with one key file (replicas in tests, `make run` twice)
    must sign with the same key, and none may read the file before its creator has
    written all of it. Threads race here as processes do: the race is the file system's."""
    for round_number in range(ROUNDS):
        path = tmp_path / f"round-{round_number}" / "dev-key"
        start = threading.Barrier(RACERS)

        def race(path: Path = path, start: threading.Barrier = start) -> bytes:
            start.wait()
            return _public(devkeys.load_or_create(path))

        with ThreadPoolExecutor(RACERS) as pool:
            keys = set(pool.map(lambda _: race(), range(RACERS)))
        assert keys == {_public(devkeys.load_or_create(path))}


def test_the_key_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "dev-key"
    devkeys.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert list(path.parent.iterdir()) == [path]  # nothing left behind
