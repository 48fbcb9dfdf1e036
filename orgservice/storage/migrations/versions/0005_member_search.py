"""member search

The search terms of every membership (ListMembersRequest.query), indexed per
organization by term; existing members are indexed from their current profiles.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from orgservice.storage.member_search import term_rows

revision: str = "0005"
down_revision: str | None = "0004"

_BATCH = 1000


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    term = sa.String(length=320, collation="C" if postgresql else None)
    terms = op.create_table(
        "member_search_terms",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("term", term, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["memberships.organization_id", "memberships.user_id"],
            name=op.f("fk_member_search_terms_organization_id_user_id_memberships"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "user_id", "term", name=op.f("pk_member_search_terms")
        ),
    )
    op.create_index(
        op.f("ix_member_search_terms_organization_id_term_create_time_user_id"),
        "member_search_terms",
        ["organization_id", "term", "create_time", "user_id"],
    )
    _index_existing_members(terms)


def _index_existing_members(terms: sa.Table) -> None:
    connection = op.get_bind()
    members = connection.execute(
        sa.text(
            "SELECT m.organization_id, m.user_id, m.create_time,"
            " u.username, u.email, u.display_name"
            " FROM memberships m JOIN users u ON u.id = m.user_id"
        ).columns(create_time=sa.DateTime(timezone=True))
    )
    while batch := members.fetchmany(_BATCH):
        rows = [
            row
            for organization_id, user_id, create_time, *profile in batch
            for row in term_rows(organization_id, user_id, create_time, tuple(profile))
        ]
        if rows:
            op.bulk_insert(terms, rows)


def downgrade() -> None:
    op.drop_table("member_search_terms")
