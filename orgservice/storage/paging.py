"""Keyset pagination over (create_time, id): no OFFSET, stable under inserts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select, func, literal, or_, select, tuple_

from orgservice.domain.models import Cursor, Page, PageRequest
from orgservice.storage.sql import Sql
from orgservice.storage.tables import UTCDateTime

T = TypeVar("T")
AnyRow = Row[*tuple[Any, ...]]


def fetch_page(
    sql: Sql,
    query: Select[Any],
    *,
    create_time: ColumnElement[datetime],
    id_column: ColumnElement[str],
    page: PageRequest,
    convert: Callable[[AnyRow], T],
    total: int | None = None,
    newest_first: bool = False,
) -> Page[T]:
    """Runs `query` for one page of items converted by `convert`.

    `total` is the size of the whole result when the caller knows it (a maintained
    counter); otherwise it is counted. The page fetches one row more than asked to
    learn whether another page follows.
    """
    if total is None:
        total = sql.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    if page.after is not None:
        position = tuple_(create_time, id_column)
        after = tuple_(literal(page.after.create_time, UTCDateTime()), literal(page.after.id))
        query = query.where(position < after if newest_first else position > after)
    ordering = (create_time.desc(), id_column.desc()) if newest_first else (create_time, id_column)
    rows: Sequence[AnyRow] = sql.execute(query.order_by(*ordering).limit(page.limit + 1)).all()
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        last = rows[-1]
        next_cursor = Cursor(last._mapping[create_time], last._mapping[id_column])
    return Page([convert(row) for row in rows], total, next_cursor)


def name_or_slug_contains(
    name: ColumnElement[str], slug: ColumnElement[str], text: str
) -> ColumnElement[bool]:
    """Case-insensitive substring match on a name or a (lower-case) slug."""
    pattern = f"%{escape_like(text.lower())}%"
    return or_(func.lower(name).like(pattern, escape="\\"), slug.like(pattern, escape="\\"))


def escape_like(text: str) -> str:
    """Escapes LIKE wildcards (use with escape="\\") so they match literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
