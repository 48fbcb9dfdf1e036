"""partial indexes: rows whose indexed column is NULL stay out of its index

`organizations.purge_time` is NULL until an organization is deleted, and
`audit_events.feed_position` until the event is placed in the feed (storage.feed): their
indexes serve only lookups of set values (the purge, the feed), so a create no longer
inserts an entry for each, and a million active organizations no longer fill an index
with NULLs.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"

_INDEXES = {  # name -> (table, column)
    "ix_organizations_purge_time": ("organizations", "purge_time"),
    "ix_audit_events_feed_position": ("audit_events", "feed_position"),
}


def _rebuild(*, partial: bool) -> None:
    """On PostgreSQL the new indexes are built beside the old ones, which are dropped
    last: a dropped index locks its table against reads too, until the commit. SQLite's
    migration holds the whole database anyway, and cannot rename an index."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, (table, column) in _INDEXES.items():
        where = sa.text(f"{column} IS NOT NULL") if partial else None
        if not postgresql:
            op.drop_index(name, table_name=table)
        built = f"{name}_rebuilt" if postgresql else name
        op.create_index(built, table, [column], sqlite_where=where, postgresql_where=where)
    if postgresql:
        for name, (table, _) in _INDEXES.items():
            op.drop_index(name, table_name=table)
            op.execute(f"ALTER INDEX {name}_rebuilt RENAME TO {name}")


def upgrade() -> None:
    _rebuild(partial=True)


def downgrade() -> None:
    _rebuild(partial=False)
