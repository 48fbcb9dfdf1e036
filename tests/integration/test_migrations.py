"""The migrations build exactly the schema the models describe, and several replicas
may run them at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from orgservice.storage import migrate
from orgservice.storage.database import create_database_engine
from orgservice.storage.tables import metadata
from tests.conftest import new_postgres_database


def test_migrations_match_the_models(database_url: str) -> None:
    engine = create_database_engine(database_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
        assert migrate.is_up_to_date(engine)
    finally:
        engine.dispose()


def test_concurrent_upgrades_on_a_fresh_postgres_database() -> None:
    with new_postgres_database() as url:
        engines = [create_database_engine(url) for _ in range(4)]
        try:
            with ThreadPoolExecutor(len(engines)) as pool:
                list(pool.map(migrate.upgrade, engines))  # re-raises any failure
            tables = set(inspect(engines[0]).get_table_names())
            assert set(metadata.tables) <= tables
            assert all(migrate.is_up_to_date(engine) for engine in engines)
        finally:
            for engine in engines:
                engine.dispose()
