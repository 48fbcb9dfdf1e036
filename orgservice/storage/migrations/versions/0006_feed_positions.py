"""feed positions

The position of each audit event in the change feed of every organization, assigned
after commit (storage.feed); existing events get theirs on the feed's first use.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("feed_position", sa.BigInteger(), nullable=True))
    op.create_index(op.f("ix_audit_events_feed_position"), "audit_events", ["feed_position"])
    op.create_index(
        "ix_audit_events_unplaced",
        "audit_events",
        ["organization_id", "seq"],
        sqlite_where=sa.text("feed_position IS NULL"),
        postgresql_where=sa.text("feed_position IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_unplaced", table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_feed_position"), table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("feed_position")
