"""Applies Alembic migrations; safe when several replicas start at once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import func
from sqlalchemy import select

MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constant naming orgservice's advisory lock on PostgreSQL.
_MIGRATION_LOCK_KEY = 0x6F7267736572


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Brings the schema to the newest revision in one transaction.

    On PostgreSQL a transaction-scoped advisory lock makes concurrent starts wait for the
    first migrator and then find nothing left to do; on SQLite the write lock taken by
    `BEGIN IMMEDIATE` does the same. (The engines run the driver in autocommit mode, so
    the transaction is opened explicitly here.)
    """
    postgresql = engine.dialect.name == "postgresql"
    options = {"isolation_level": "READ COMMITTED"} if postgresql else {}
    with engine.connect().execution_options(**options) as connection:
        if postgresql:
            connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            command.upgrade(alembic_config(connection), "head")
            connection.commit()
        else:
            _upgrade_sqlite(connection)


def _upgrade_sqlite(connection: Connection) -> None:
    """SQLite changes most of a table by rebuilding it (copy, drop, rename): with foreign
    keys enforced, dropping the old `organizations` would cascade into every tenant
    table. So they are off while migrating (a setting SQLite only changes outside a
    transaction), checked before the commit, and the connection is discarded after."""
    connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        command.upgrade(alembic_config(connection), "head")
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migrating left {len(broken)} row(s) with broken foreign keys")
        connection.exec_driver_sql("COMMIT")
    finally:
        connection.invalidate()  # never pooled with foreign keys off (or mid-transaction)


def is_up_to_date(engine: Engine) -> bool:
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
        head = ScriptDirectory.from_config(alembic_config(connection)).get_heads()
        return set(current) == set(head)
