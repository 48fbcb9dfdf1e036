"""Update masks (AIP-134): which fields of a resource an update touches."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Collection
from typing import Any
from typing import TypeVar
from typing import cast

from google.protobuf.descriptor import Descriptor
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from orgservice.domain.errors import Violations
from orgservice.domain.errors import invalid
from orgservice.domain.errors import quoted

T = TypeVar("T")
MAX_PATHS = 20


def paths_to_update(mask: FieldMask, resource: Message, mutable: Collection[str]) -> set[str]:
    """The mutable fields to write, as paths; `mutable` may name nested fields
    (`settings.max_members`). An empty mask means every mutable field the request sets;
    `*` means all mutable fields; a path naming a message (`settings`) means all its
    mutable fields; unknown or immutable paths are rejected."""
    if not mask.paths:
        return {path for path in mutable if _is_set(resource, path)}
    if list(mask.paths) == ["*"]:
        return set(mutable)
    if len(mask.paths) > MAX_PATHS:
        raise invalid("update_mask", f"must name at most {MAX_PATHS} paths")
    chosen: set[str] = set()
    violations = Violations()
    for path in mask.paths:
        covered = {field for field in mutable if field == path or field.startswith(path + ".")}
        if covered:
            chosen |= covered
        elif _exists(cast(Descriptor, resource.DESCRIPTOR), path):
            violations.add("update_mask", f"field {quoted(path)} cannot be changed")
        else:
            violations.add("update_mask", f"unknown field {quoted(path)}")
    violations.raise_if_any()
    return chosen


def _is_set(message: Message, path: str) -> bool:
    """Whether the field at `path` is present (messages) or non-default (others)."""
    name, _, rest = path.partition(".")
    present = {field.name: value for field, value in message.ListFields()}
    if name not in present:
        return False
    return _is_set(present[name], rest) if rest else True


def _exists(descriptor: Descriptor, path: str) -> bool:
    name, _, rest = path.partition(".")
    field = descriptor.fields_by_name.get(name)
    if field is None:
        return False
    if not rest:
        return True
    return field.message_type is not None and _exists(field.message_type, rest)


def update_of(
    request: Message,
    resource_field: str,
    mutable: Collection[str],
    build: Callable[[Any, set[str]], T],
    *,
    key: str = "id",
) -> tuple[Any, Callable[[], T]]:
    """The resource an Update request names (its `key` field required) and the changes
    it asks for, as `changes` defers them."""
    resource = getattr(request, resource_field)
    if not getattr(resource, key):
        raise invalid(f"{resource_field}.{key}", "is required")
    mask: FieldMask = getattr(request, "update_mask")  # noqa: B009 (every Update has one)
    return resource, changes(mask, resource, mutable, lambda paths: build(resource, paths))


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
