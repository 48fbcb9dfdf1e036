"""Keyset pagination over (create_time, id): no OFFSET, stable under inserts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, func, literal, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from orgservice.domain.models import Cursor, PageRequest
from orgservice.storage.tables import UTCDateTime

AnyRow = Row[*tuple[Any, ...]]


def fetch_page(
    session: Session,
    query: Select[*tuple[Any, ...]],
    *,
    create_time: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[str],
    page: PageRequest,
    cursor_of: Callable[[AnyRow], Cursor],
    newest_first: bool = False,
) -> tuple[list[AnyRow], int, Cursor | None]:
    """Runs `query` for one page; returns its rows, the total count and the next cursor.

    The count ignores the cursor, so total_size describes the whole result. The page
    fetches one row more than asked to learn whether another page follows.
    """
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    if page.after is not None:
        position = tuple_(create_time, id_column)
        after = tuple_(literal(page.after.create_time, UTCDateTime()), literal(page.after.id))
        query = query.where(position < after if newest_first else position > after)
    ordering = (create_time.desc(), id_column.desc()) if newest_first else (create_time, id_column)
    rows = list(session.execute(query.order_by(*ordering).limit(page.limit + 1)).all())
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        next_cursor = cursor_of(rows[-1])
    return rows, total or 0, next_cursor


def name_or_slug_contains(
    name: InstrumentedAttribute[str], slug: InstrumentedAttribute[str], text: str
) -> ColumnElement[bool]:
    """Case-insensitive substring match on a name or a (lower-case) slug."""
    pattern = f"%{escape_like(text.lower())}%"
    return or_(func.lower(name).like(pattern, escape="\\"), slug.like(pattern, escape="\\"))


def escape_like(text: str) -> str:
    """Escapes LIKE wildcards (use with escape="\\") so they match literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
