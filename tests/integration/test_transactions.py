"""Write units of work on SQLite and PostgreSQL (`database_url`): all or nothing from
their first statement (executemany included), which already runs under the budget's
timeouts (statement and lock timeouts on PostgreSQL, the busy timeout on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text

from orgservice.domain.budget import Budget
from orgservice.storage import migrate
from orgservice.storage.database import EngineOptions
from orgservice.storage.database import create_database_engine
from orgservice.storage.tables import users
from orgservice.storage.unit_of_work import SqlDatabase
from tests.support.pgbouncer import direct_url_for
from tests.support.rows import user_row


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[SqlDatabase]:
    pooled = direct_url_for(database_url) != database_url
    engine = create_database_engine(
        database_url, EngineOptions(pooler="pgbouncer" if pooled else "")
    )
    migrate.upgrade(engine)
    yield SqlDatabase(engine)
    engine.dispose()


def new_user() -> dict[str, Any]:
    return user_row("transactions")


def stored(database: SqlDatabase, rows: list[dict[str, Any]]) -> int:
    ids = [row["id"] for row in rows]
    with database.snapshot(Budget(5)) as uow:
        return int(uow.sql.execute(select(func.count()).where(users.c.id.in_(ids))).scalar_one())


@pytest.mark.parametrize("many", [False, True], ids=["one row", "executemany"])
def test_a_transaction_left_without_commit_keeps_nothing_of_its_first_statement(
    database: SqlDatabase, many: bool
) -> None:
    rows = [new_user(), new_user()] if many else [new_user()]
    with database.transaction(Budget(5)) as uow:
        uow.sql.execute(insert(users), rows if many else rows[0])
        uow.sql.execute(insert(users), new_user())
    assert stored(database, rows) == 0

    with database.transaction(Budget(5)) as uow:
        uow.sql.execute(insert(users), rows if many else rows[0])
        uow.commit()
    assert stored(database, rows) == len(rows)


def test_the_first_statement_runs_under_the_budgets_timeouts(database: SqlDatabase) -> None:
    with database.transaction(Budget(5)) as uow:
        if database.engine.dialect.name == "postgresql":
            settings = uow.sql.execute(
                text("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')")
            ).one()
            assert all(setting.endswith("ms") for setting in settings), settings
            milliseconds = [int(setting.removesuffix("ms")) for setting in settings]
        else:
            milliseconds = [uow.sql.execute(text("PRAGMA busy_timeout")).scalar_one()]
    # From what was left of a 5 s budget: a few milliseconds under it.
    assert all(4000 < value <= 5000 for value in milliseconds), milliseconds
