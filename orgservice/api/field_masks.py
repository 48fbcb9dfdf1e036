"""Update masks (AIP-134): which fields of a resource an update touches."""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from orgservice.domain.errors import Violations


def paths_to_update(mask: FieldMask, resource: Message, mutable: Collection[str]) -> set[str]:
    """The mutable fields to write. An empty mask means every mutable field the request
    sets; `*` means all mutable fields; unknown or immutable paths are rejected."""
    if not mask.paths:
        return {field.name for field, _ in resource.ListFields() if field.name in mutable}
    if list(mask.paths) == ["*"]:
        return set(mutable)
    known = {field.name for field in resource.DESCRIPTOR.fields}
    violations = Violations()
    for path in mask.paths:
        if path not in known:
            violations.add("update_mask", f"unknown field {path!r}")
        elif path not in mutable:
            violations.add("update_mask", f"field {path!r} cannot be changed")
    violations.raise_if_any()
    return set(mask.paths)
