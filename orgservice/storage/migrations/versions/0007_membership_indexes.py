"""membership indexes: one membership is one index entry away

The index on memberships.user_id becomes (user_id, organization_id), so a generic plan
no longer finds one membership by scanning all of a user's; the one on (organization_id,
role) becomes (role, organization_id, create_time, user_id), which reads a page of the
members in a role in the list's order and is no candidate for finding one membership
(storage.tables).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"

_REPLACED = {
    "ix_memberships_user_id": ["user_id"],
    "ix_memberships_organization_id_role": ["organization_id", "role"],
}
_BY = {
    "ix_memberships_user_id_organization_id": ["user_id", "organization_id"],
    "ix_memberships_role_organization_id_create_time_user_id": [
        "role",
        "organization_id",
        "create_time",
        "user_id",
    ],
}


def _swap(drop: dict[str, list[str]], create: dict[str, list[str]]) -> None:
    for name, columns in create.items():
        op.create_index(op.f(name), "memberships", columns)
    for name in drop:
        op.drop_index(op.f(name), table_name="memberships")


def upgrade() -> None:
    _swap(_REPLACED, _BY)


def downgrade() -> None:
    _swap(_BY, _REPLACED)
