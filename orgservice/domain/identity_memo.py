"""Values made from an object, once, for as long as that object lives.

The read cache hands every read the very same object while it is cached, so what is
made from it (a caller's view of it, its protobuf encoding) can be made once: each value
is kept by the object's identity, and goes when the object does (a weak-reference
finalizer runs before the id can be given to another object). Only for objects that
never change, and for values that depend on nothing but the object.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic
from typing import TypeVar

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    def __init__(self) -> None:
        self._values: dict[tuple[int, str], V] = {}

    def of(self, source: object, kind: str, make: Callable[[], V]) -> V:
        """`make()` for `source`, made once per object and `kind` (which names what is
        made, where one object serves several purposes)."""
        key = (id(source), kind)
        value = self._values.get(key)
        if value is None:
            value = make()
            # First the finalizer: an object that takes no weak reference keeps nothing.
            weakref.finalize(source, self._values.pop, key, None)
            self._values[key] = value
        return value

    def __len__(self) -> int:
        return len(self._values)
