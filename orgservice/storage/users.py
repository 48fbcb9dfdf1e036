"""Users, created on their first authenticated call."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from orgservice.domain.models import Identity
from orgservice.domain.models import User
from orgservice.domain.models import UserRef
from orgservice.domain.validation import new_id
from orgservice.storage.member_search import MemberSearchIndex
from orgservice.storage.rows import AnyRow
from orgservice.storage.rows import from_row
from orgservice.storage.sql import Sql
from orgservice.storage.tables import memberships
from orgservice.storage.tables import users

# Selected beside other tables' columns (members), hence the prefix.
USER_COLUMNS = tuple(
    users.c[name].label(f"u_{name}")
    for name in ("id", "subject", "username", "email", "display_name", "create_time")
)
_BY_ID = select(*USER_COLUMNS).where(users.c.id == bindparam("id"))
_ORGANIZATIONS_OF = select(memberships.c.organization_id).where(
    memberships.c.user_id == bindparam("user_id")
)
_BY_SUBJECT = select(*USER_COLUMNS, users.c.email_verified.label("u_email_verified")).where(
    users.c.subject == bindparam("subject")
)


class UserRepository:
    def __init__(self, sql: Sql, search: MemberSearchIndex) -> None:
        self._sql = sql
        self._search = search

    def get(self, user_id: str) -> User | None:
        row = self._sql.execute(_BY_ID, {"id": user_id}).first()
        return to_user(row) if row else None

    def find(self, ref: UserRef, *, limit: int = 2) -> list[User]:
        """Users matching the reference (emails compare case-insensitively); callers
        ask for two to tell "unique" from "ambiguous"."""
        query = select(*USER_COLUMNS).order_by(users.c.create_time).limit(limit)
        if ref.user_id:
            query = query.where(users.c.id == ref.user_id)
        elif ref.username:
            query = query.where(users.c.username == ref.username)
        else:
            query = query.where(func.lower(users.c.email) == ref.email.lower())
        return [to_user(row) for row in self._sql.execute(query)]

    def ensure(self, identity: Identity, now: datetime) -> tuple[User, bool]:
        """Returns the identity's user, creating it if absent; the flag says "created".

        Concurrent first calls race on the unique subject: the insert does nothing for
        all but the first, which then read the winner's row (on PostgreSQL the insert
        waits until the winner commits).
        """
        dialect_insert = pg_insert if self._sql.postgresql else sqlite_insert
        created = (
            self._sql.execute(
                dialect_insert(users)
                .values(
                    id=new_id(),
                    subject=identity.subject,
                    username=identity.username,
                    email=identity.email,
                    email_verified=identity.email_verified,
                    display_name=identity.display_name,
                    create_time=now,
                    update_time=now,
                )
                .on_conflict_do_nothing(index_elements=[users.c.subject])
                .returning(users.c.id)
            ).first()
            is not None
        )
        row = self._sql.execute(_BY_SUBJECT, {"subject": identity.subject}).one()
        if not created and _profile_changed(row, identity):
            self._sql.execute(
                update(users)
                .where(users.c.subject == identity.subject)
                .values(
                    username=identity.username,
                    email=identity.email,
                    email_verified=identity.email_verified,
                    display_name=identity.display_name,
                    update_time=now,
                )
            )
            user_id = row._mapping["u_id"]
            if _searchable(row) != identity.profile:
                organization_ids = self._search.reindex_user(user_id, identity.profile)
            else:
                organization_ids = list(
                    self._sql.execute(_ORGANIZATIONS_OF, {"user_id": user_id}).scalars()
                )
            # Member lists show the profile: the user's organizations changed (caches).
            for organization_id in organization_ids:
                self._sql.touch(organization_id)
            row = self._sql.execute(_BY_SUBJECT, {"subject": identity.subject}).one()
        return to_user(row), created


def _profile_changed(row: AnyRow, identity: Identity) -> bool:
    m = row._mapping
    return (m["u_username"], m["u_email"], m["u_email_verified"], m["u_display_name"]) != (
        identity.username,
        identity.email,
        identity.email_verified,
        identity.display_name,
    )


def _searchable(row: AnyRow) -> tuple[str, str, str]:
    m = row._mapping
    return m["u_username"], m["u_email"], m["u_display_name"]


def to_user(row: AnyRow) -> User:
    """The user in a row selected with USER_COLUMNS."""
    return from_row(User, row, prefix="u_")
