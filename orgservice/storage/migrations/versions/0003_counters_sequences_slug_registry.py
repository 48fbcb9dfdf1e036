"""counters, event sequence numbers, slug registry

Maintained member and workspace counts and the newest event's sequence number on every
organization; a per-organization sequence number on audit events (commit order, for the
change feed); organization slugs move to a registry table so that no unique key of a
tenant table spans organizations; invitation token hashes are indexed, not unique.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.create_table(
        "organization_slugs",
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_organization_slugs")),
    )
    op.create_index(
        op.f("ix_organization_slugs_organization_id"), "organization_slugs", ["organization_id"]
    )
    op.execute(
        "INSERT INTO organization_slugs (slug, organization_id) SELECT slug, id FROM organizations"
    )

    with op.batch_alter_table("organizations") as batch:
        batch.add_column(
            sa.Column("member_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("workspace_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("event_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.drop_constraint("uq_organizations_slug", type_="unique")
        batch.create_index(batch.f("ix_organizations_purge_time"), ["purge_time"])
    op.execute(
        "UPDATE organizations SET member_count ="
        " (SELECT count(*) FROM memberships t WHERE t.organization_id = organizations.id)"
    )
    op.execute(
        "UPDATE organizations SET workspace_count ="
        " (SELECT count(*) FROM workspaces t WHERE t.organization_id = organizations.id)"
    )
    op.execute(
        "UPDATE organizations SET event_seq ="
        " (SELECT count(*) FROM audit_events t WHERE t.organization_id = organizations.id)"
    )

    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=False, server_default="0"))
    # Number existing events in the order they were listed: creation time, then id.
    op.execute(
        "UPDATE audit_events SET seq = (SELECT count(*) FROM audit_events e"
        " WHERE e.organization_id = audit_events.organization_id"
        " AND (e.create_time < audit_events.create_time"
        "  OR (e.create_time = audit_events.create_time AND e.id <= audit_events.id)))"
    )
    op.create_index(
        op.f("ix_audit_events_organization_id_seq"),
        "audit_events",
        ["organization_id", "seq"],
        unique=True,
    )

    with op.batch_alter_table("invitations") as batch:
        batch.drop_constraint("uq_invitations_token_hash", type_="unique")
        batch.create_index(batch.f("ix_invitations_token_hash"), ["token_hash"])

    op.create_index(op.f("ix_idempotency_keys_create_time"), "idempotency_keys", ["create_time"])

    # Server defaults only filled the existing rows; the service always writes them.
    for table, columns in (
        ("organizations", ("member_count", "workspace_count", "event_seq")),
        ("audit_events", ("seq",)),
    ):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, server_default=None)


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_keys_create_time"), table_name="idempotency_keys")
    with op.batch_alter_table("invitations") as batch:
        batch.drop_index(batch.f("ix_invitations_token_hash"))
        batch.create_unique_constraint("uq_invitations_token_hash", ["token_hash"])
    op.drop_index(op.f("ix_audit_events_organization_id_seq"), table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("seq")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_index(batch.f("ix_organizations_purge_time"))
        batch.create_unique_constraint("uq_organizations_slug", ["slug"])
        batch.drop_column("event_seq")
        batch.drop_column("workspace_count")
        batch.drop_column("member_count")
    op.drop_index(op.f("ix_organization_slugs_organization_id"), table_name="organization_slugs")
    op.drop_table("organization_slugs")
