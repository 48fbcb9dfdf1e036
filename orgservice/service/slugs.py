"""Slug choice for creates: the requested slug, or one derived from a name."""

from __future__ import annotations

from collections.abc import Callable

from orgservice.domain.errors import AlreadyExists, invalid
from orgservice.domain.validation import slugify, with_suffix

_ATTEMPTS = 5


def insert_with_slug(
    insert: Callable[[str], None],
    is_taken: Callable[[str], bool],
    *,
    requested: str | None,
    derive_from: str,
) -> str:
    """Calls `insert(slug)` and returns the slug used.

    A requested slug is used as is (a clash raises SLUG_TAKEN). Otherwise the slug is
    derived from `derive_from`; collisions, including ones with concurrent creates,
    get a short random suffix.
    """
    if requested:
        insert(requested)
        return requested
    candidate = slugify(derive_from)
    for _attempt in range(_ATTEMPTS):
        if not is_taken(candidate):
            try:
                insert(candidate)
            except AlreadyExists:
                pass  # taken by a concurrent create since the check: try another suffix
            else:
                return candidate
        candidate = with_suffix(slugify(derive_from))
    raise invalid("slug", "could not derive a free slug from the name; choose one")
