"""IdentityMemo: one value per object and kind, for as long as that object lives."""

from __future__ import annotations

import gc
from dataclasses import dataclass

import pytest

from orgservice.domain.identity_memo import IdentityMemo


@dataclass(frozen=True)
class Source:
    name: str


class Encoder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, source: Source) -> bytes:
        self.calls += 1
        return source.name.encode()


def test_an_object_is_encoded_once_per_kind() -> None:
    encodings, encoder = IdentityMemo[bytes](), Encoder()
    source = Source("acme")

    first = encodings.of(source, "organization", lambda: encoder(source))
    again = encodings.of(source, "organization", lambda: encoder(source))
    other_kind = encodings.of(source, "members", lambda: encoder(source))

    assert (first, again, other_kind) == (b"acme", b"acme", b"acme")
    assert encoder.calls == 2


def test_equal_objects_are_encoded_each_on_its_own() -> None:
    """Identity, not equality: an object the cache replaced is never answered for by the
    encoding of the one before, whatever they compare as."""
    encodings, encoder = IdentityMemo[bytes](), Encoder()
    before, after = Source("acme"), Source("acme")

    encodings.of(before, "organization", lambda: encoder(before))
    encodings.of(after, "organization", lambda: encoder(after))

    assert encoder.calls == 2


def test_an_entry_goes_with_its_object() -> None:
    encodings = IdentityMemo[bytes]()
    for index in range(100):
        source = Source(f"organization {index}")
        encodings.of(source, "organization", lambda: b"encoded")
    del source
    gc.collect()

    assert len(encodings) == 0


def test_an_object_without_weak_references_keeps_nothing() -> None:
    """Its entry could never be dropped, and its id would be given to another object."""
    memo = IdentityMemo[bytes]()

    with pytest.raises(TypeError):
        memo.of(("not", "weakly", "referenced"), "organization", lambda: b"encoded")

    assert len(memo) == 0
