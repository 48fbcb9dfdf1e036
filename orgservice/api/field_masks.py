"""Update masks (AIP-134): which fields of a resource an update touches."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from orgservice.domain.errors import Violations, invalid, quoted

T = TypeVar("T")
MAX_PATHS = 20


def paths_to_update(mask: FieldMask, resource: Message, mutable: Collection[str]) -> set[str]:
    """The mutable fields to write. An empty mask means every mutable field the request
    sets; `*` means all mutable fields; unknown or immutable paths are rejected."""
    if not mask.paths:
        return {field.name for field, _ in resource.ListFields() if field.name in mutable}
    if list(mask.paths) == ["*"]:
        return set(mutable)
    if len(mask.paths) > MAX_PATHS:
        raise invalid("update_mask", f"must name at most {MAX_PATHS} paths")
    known = {field.name for field in resource.DESCRIPTOR.fields}
    violations = Violations()
    for path in mask.paths:
        if path not in known:
            violations.add("update_mask", f"unknown field {quoted(path)}")
        elif path not in mutable:
            violations.add("update_mask", f"field {quoted(path)} cannot be changed")
    violations.raise_if_any()
    return set(mask.paths)


def changes(
    mask: FieldMask, resource: Message, mutable: Collection[str], build: Callable[[set[str]], T]
) -> Callable[[], T]:
    """The update an Update RPC asks for, parsed when the use case calls it: after it has
    authorized the caller, so only callers allowed to update learn their mask is bad."""

    def parse() -> T:
        paths = paths_to_update(mask, resource, mutable)
        if not paths:
            raise invalid("update_mask", "names no field to update")
        return build(paths)

    return parse
