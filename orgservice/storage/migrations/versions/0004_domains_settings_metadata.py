"""domains, settings, metadata

Domains an organization claims (a tenant table) and the registry of verified names (a
global one: a name is VERIFIED in at most one organization); who joined through
auto-join; membership settings and public/private metadata on organizations. The
built-in owner and admin roles of existing organizations gain `domains.list` and
`domains.manage`, as new organizations' do.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# The built-in roles as of this revision (built-in roles cannot be changed, so every
# organization holds exactly the previous lists, which these extend).
_ADMIN = [
    "organizations.get",
    "members.list",
    "workspaces.list",
    "workspaces.get",
    "roles.list",
    "workspaces.create",
    "workspaces.update",
    "organizations.update",
    "members.add",
    "members.update",
    "members.remove",
    "invitations.list",
    "invitations.create",
    "invitations.update",
    "invitations.revoke",
    "workspaces.delete",
    "roles.create",
    "roles.update",
    "roles.delete",
    "audit.list",
]
_DOMAINS = ["domains.list", "domains.manage"]
_OWNER_ONLY = ["organizations.delete", "organizations.undelete"]
_ADMIN_DESCRIPTIONS = (
    "Manages members, invitations, roles and workspaces.",
    "Manages members, invitations, roles, workspaces and domains.",
)
_SETTINGS_AND_METADATA = (
    "auto_join_role",
    "restrict_invitations_to_domains",
    "max_members",
    "public_metadata",
    "private_metadata",
)

_roles = sa.table(
    "roles",
    sa.column("name", sa.String()),
    sa.column("built_in", sa.Boolean()),
    sa.column("description", sa.Text()),
    sa.column("permissions", JSON_DOCUMENT),
)


def _set_built_in_roles(admin: list[str], admin_description: str, owner: list[str]) -> None:
    built_in = _roles.c.built_in == sa.true()
    op.execute(
        _roles.update()
        .where(built_in, _roles.c.name == "admin")
        .values(permissions=admin, description=admin_description)
    )
    op.execute(_roles.update().where(built_in, _roles.c.name == "owner").values(permissions=owner))


def upgrade() -> None:
    op.create_table(
        "verified_domains",
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_verified_domains")),
    )
    op.create_index(
        op.f("ix_verified_domains_organization_id"), "verified_domains", ["organization_id"]
    )
    op.create_table(
        "domains",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verify_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_domains_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "name", name=op.f("pk_domains")),
    )
    op.create_table(
        "auto_joins",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_auto_joins_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auto_joins_user_id_users")
        ),
        sa.PrimaryKeyConstraint("organization_id", "user_id", name=op.f("pk_auto_joins")),
    )

    with op.batch_alter_table("organizations") as batch:
        batch.add_column(
            sa.Column("auto_join_role", sa.String(length=63), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column(
                "restrict_invitations_to_domains",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
        batch.add_column(sa.Column("max_members", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("default_invitation_ttl", sa.Interval(), nullable=True))
        batch.add_column(
            sa.Column("public_metadata", JSON_DOCUMENT, nullable=False, server_default="{}")
        )
        batch.add_column(
            sa.Column("private_metadata", JSON_DOCUMENT, nullable=False, server_default="{}")
        )
    # Server defaults only filled the existing rows; the service always writes them.
    with op.batch_alter_table("organizations") as batch:
        for column in _SETTINGS_AND_METADATA:
            batch.alter_column(column, server_default=None)

    admin = _ADMIN + _DOMAINS
    _set_built_in_roles(admin, _ADMIN_DESCRIPTIONS[1], admin + _OWNER_ONLY)


def downgrade() -> None:
    _set_built_in_roles(_ADMIN, _ADMIN_DESCRIPTIONS[0], _ADMIN + _OWNER_ONLY)
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("private_metadata")
        batch.drop_column("public_metadata")
        batch.drop_column("default_invitation_ttl")
        batch.drop_column("max_members")
        batch.drop_column("restrict_invitations_to_domains")
        batch.drop_column("auto_join_role")
    op.drop_table("auto_joins")
    op.drop_table("domains")
    op.drop_index(op.f("ix_verified_domains_organization_id"), table_name="verified_domains")
    op.drop_table("verified_domains")
