"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:38:13.756906
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0001"
down_revision: str | None = None


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("labels", JSON_DOCUMENT, nullable=False),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("create_time", TIMESTAMP, nullable=False),
        sa.Column("update_time", TIMESTAMP, nullable=False),
        sa.Column("delete_time", TIMESTAMP, nullable=True),
        sa.Column("purge_time", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("slug", name=op.f("uq_organizations_slug")),
    )
    op.create_index(
        op.f("ix_organizations_create_time_id"),
        "organizations",
        ["create_time", "id"],
        unique=False,
    )

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_verified", sa.Boolean(), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("create_time", TIMESTAMP, nullable=False),
        sa.Column("update_time", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("subject", name=op.f("uq_users_subject")),
    )
    op.create_index(op.f("ix_users_email"), "users", ["email"], unique=False)
    op.create_index(op.f("ix_users_username"), "users", ["username"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("actor_user_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=255), nullable=False),
        sa.Column("details", JSON_DOCUMENT, nullable=False),
        sa.Column("create_time", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_audit_events_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_audit_events")),
    )
    op.create_index(
        op.f("ix_audit_events_organization_id_create_time_id"),
        "audit_events",
        ["organization_id", "create_time", "id"],
        unique=False,
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=255), nullable=False),
        sa.Column("create_time", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_idempotency_keys_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "request_id", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "roles",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("permissions", JSON_DOCUMENT, nullable=False),
        sa.Column("built_in", sa.Boolean(), nullable=False),
        sa.Column("create_time", TIMESTAMP, nullable=False),
        sa.Column("update_time", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_roles_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "name", name=op.f("pk_roles")),
    )
    op.create_table(
        "workspaces",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("create_time", TIMESTAMP, nullable=False),
        sa.Column("update_time", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_workspaces_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_workspaces")),
    )
    op.create_index(
        op.f("ix_workspaces_organization_id_create_time_id"),
        "workspaces",
        ["organization_id", "create_time", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_workspaces_organization_id_slug"),
        "workspaces",
        ["organization_id", "slug"],
        unique=True,
    )

    op.create_table(
        "memberships",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=63), nullable=False),
        sa.Column("create_time", TIMESTAMP, nullable=False),
        sa.Column("update_time", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "role"],
            ["roles.organization_id", "roles.name"],
            name=op.f("fk_memberships_organization_id_role_roles"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_memberships_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users")
        ),
        sa.PrimaryKeyConstraint("organization_id", "user_id", name=op.f("pk_memberships")),
    )
    op.create_index(
        op.f("ix_memberships_organization_id_create_time_user_id"),
        "memberships",
        ["organization_id", "create_time", "user_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_memberships_organization_id_role"),
        "memberships",
        ["organization_id", "role"],
        unique=False,
    )
    op.create_index(op.f("ix_memberships_user_id"), "memberships", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_memberships_user_id"), table_name="memberships")
    op.drop_index(op.f("ix_memberships_organization_id_role"), table_name="memberships")
    op.drop_index(
        op.f("ix_memberships_organization_id_create_time_user_id"), table_name="memberships"
    )

    op.drop_table("memberships")
    op.drop_index(op.f("ix_workspaces_organization_id_slug"), table_name="workspaces")
    op.drop_index(op.f("ix_workspaces_organization_id_create_time_id"), table_name="workspaces")

    op.drop_table("workspaces")
    op.drop_table("roles")
    op.drop_table("idempotency_keys")
    op.drop_index(op.f("ix_audit_events_organization_id_create_time_id"), table_name="audit_events")

    op.drop_table("audit_events")
    op.drop_index(op.f("ix_users_username"), table_name="users")
    op.drop_index(op.f("ix_users_email"), table_name="users")

    op.drop_table("users")
    op.drop_index(op.f("ix_organizations_create_time_id"), table_name="organizations")

    op.drop_table("organizations")
