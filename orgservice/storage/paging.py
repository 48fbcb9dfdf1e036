"""Keyset pagination over (create_time, id): no OFFSET, stable under inserts.

A `Pager` builds its statements once (first page, next page, count), with bind
parameters for everything that varies, so a List RPC spends no time constructing SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from typing import TypeVar

from sqlalchemy import BindParameter
from sqlalchemy import ColumnElement
from sqlalchemy import Select
from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import tuple_

from orgservice.domain.models import Cursor
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.storage.rows import AnyRow
from orgservice.storage.sql import Sql
from orgservice.storage.tables import TIMESTAMP

T = TypeVar("T")


class Pager:
    def __init__(
        self,
        query: Select[Any],
        *,
        create_time: ColumnElement[datetime],
        id_column: ColumnElement[str],
        newest_first: bool = False,
    ) -> None:
        self.query = query
        self._create_time = create_time
        self._id_column = id_column
        self._newest_first = newest_first
        ordering = (
            (create_time.desc(), id_column.desc()) if newest_first else (create_time, id_column)
        )
        limit: BindParameter[int] = bindparam("page_limit")
        position = tuple_(create_time, id_column)
        after = tuple_(bindparam("after_time", type_=TIMESTAMP), bindparam("after_id"))
        self._first = query.order_by(*ordering).limit(limit)
        self._next = (
            query.where(position < after if newest_first else position > after)
            .order_by(*ordering)
            .limit(limit)
        )
        self._count = select(func.count()).select_from(query.subquery())

    def narrowed(self, condition: ColumnElement[bool]) -> Pager:
        """The same list with one more condition (statements built now, not reused)."""
        return Pager(
            self.query.where(condition),
            create_time=self._create_time,
            id_column=self._id_column,
            newest_first=self._newest_first,
        )

    def fetch(
        self,
        sql: Sql,
        page: PageRequest,
        parameters: Mapping[str, Any],
        convert: Callable[[AnyRow], T],
        *,
        total: int | None = None,
    ) -> Page[T]:
        """One page of items converted by `convert`.

        `total` is the size of the whole result when the caller knows it (a maintained
        counter); otherwise it is counted. The page fetches one row more than asked to
        learn whether another page follows.
        """
        if total is None:
            total = int(sql.execute(self._count, parameters).scalar_one())
        values = {**parameters, "page_limit": page.limit + 1}
        statement = self._first
        if page.after is not None:
            statement = self._next
            values.update(after_time=page.after.create_time, after_id=page.after.id)
        rows: Sequence[AnyRow] = sql.execute(statement, values).all()
        next_cursor = None
        if len(rows) > page.limit:
            rows = rows[: page.limit]
            last = rows[-1]._mapping
            next_cursor = Cursor(last[self._create_time], last[self._id_column])
        return Page([convert(row) for row in rows], total, next_cursor)


def name_or_slug_contains(
    name: ColumnElement[str], slug: ColumnElement[str], parameter: str = "pattern"
) -> ColumnElement[bool]:
    """Case-insensitive substring match on a name or a (lower-case) slug; bind the
    pattern from `contains_pattern`."""
    pattern: BindParameter[str] = bindparam(parameter)
    return or_(func.lower(name).like(pattern, escape="\\"), slug.like(pattern, escape="\\"))


def contains_pattern(text: str) -> str:
    return f"%{escape_like(text.lower())}%"


def escape_like(text: str) -> str:
    """Escapes LIKE wildcards (use with escape="\\") so they match literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
