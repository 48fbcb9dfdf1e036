"""Databases for migration tests: new ones, migrated step by step over a direct
connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from orgservice.storage import migrate
from tests.conftest import BACKENDS
from tests.conftest import new_postgres_database
from tests.support.pgbouncer import direct_url_for


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    with new_postgres_database() as url:
        # Migrations are an administrator's job, done over a direct connection, as the
        # statements of the conftest's database set-up are.
        yield direct_url_for(url)


@contextmanager
def plain_engine(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def migrate_to(url: str, revision: str, *, down: bool = False) -> None:
    with plain_engine(url) as engine, engine.begin() as connection:
        config = migrate.alembic_config(connection)
        (command.downgrade if down else command.upgrade)(config, revision)
