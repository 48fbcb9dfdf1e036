"""The migrations build exactly the schema the models describe, and several replicas
may run them at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import bindparam
from sqlalchemy import inspect
from sqlalchemy import text

from orgservice.storage import migrate
from orgservice.storage.database import create_database_engine
from orgservice.storage.tables import metadata
from tests.conftest import new_postgres_database
from tests.support.migrations import migrate_to
from tests.support.migrations import plain_engine


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


# Indexes of columns that are NULL in most rows, holding only the rows where they are set
# since 0008 (ix_audit_events_unplaced: the other way round, since it was made).
PARTIAL_INDEXES = {
    "ix_organizations_purge_time": "purge_time IS NOT NULL",
    "ix_audit_events_feed_position": "feed_position IS NOT NULL",
    "ix_audit_events_unplaced": "feed_position IS NULL",
}
_INDEX_DEFINITIONS = {
    "postgresql": "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN :names",
    "sqlite": "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN :names",
}


def test_partial_indexes_keep_their_condition(empty_database: str) -> None:
    """compare_metadata does not compare an index's condition: the catalog tells it, at
    the head, after a downgrade to 0007 and after the upgrade again."""
    url = empty_database
    migrate_to(url, "head")
    assert conditions(url) == PARTIAL_INDEXES

    migrate_to(url, "0007", down=True)
    assert conditions(url) == {"ix_audit_events_unplaced": "feed_position IS NULL"}

    migrate_to(url, "head")
    assert conditions(url) == PARTIAL_INDEXES


def conditions(url: str) -> dict[str, str]:
    """Which of PARTIAL_INDEXES exist with their condition, by name."""
    with plain_engine(url) as engine, engine.connect() as connection:
        query = text(_INDEX_DEFINITIONS[engine.dialect.name])
        names = {"names": list(PARTIAL_INDEXES)}
        rows = connection.execute(query.bindparams(bindparam("names", expanding=True)), names)
        definitions = dict(rows.all())
    return {
        name: condition
        for name, condition in PARTIAL_INDEXES.items()
        if condition in definitions[name]
    }


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
