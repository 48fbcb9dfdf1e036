"""Rows to domain objects: columns named like a dataclass's fields fill them."""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import TypeVar

from sqlalchemy import Row

T = TypeVar("T")
AnyRow = Row[*tuple[Any, ...]]


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(field.name for field in dataclasses.fields(cls))
    return names


def from_row(cls: type[T], row: AnyRow, *, prefix: str = "", **values: Any) -> T:
    """An instance of the dataclass `cls`: each field from `values` when given there,
    else from the row's column of the same name (after `prefix`)."""
    columns = row._mapping
    return cls(
        **{
            name: values[name] if name in values else columns[prefix + name]
            for name in _field_names(cls)
        }
    )
