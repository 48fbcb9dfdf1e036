"""Users, created on their first authenticated call."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orgservice.domain.models import Identity, User, UserRef
from orgservice.domain.validation import new_id
from orgservice.storage.database import flush_unique
from orgservice.storage.tables import UserRow


class UserRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, user_id: str) -> User | None:
        row = self._session.get(UserRow, user_id)
        return to_user(row) if row else None

    def find(self, ref: UserRef, *, limit: int = 2) -> list[User]:
        """Users matching the reference (emails compare case-insensitively); callers
        ask for two to tell "unique" from "ambiguous"."""
        query = select(UserRow).order_by(UserRow.create_time).limit(limit)
        if ref.user_id:
            query = query.where(UserRow.id == ref.user_id)
        elif ref.username:
            query = query.where(UserRow.username == ref.username)
        else:
            query = query.where(func.lower(UserRow.email) == ref.email.lower())
        return [to_user(row) for row in self._session.scalars(query)]

    def ensure(self, identity: Identity, now: datetime) -> tuple[User, bool]:
        """Returns the identity's user, creating it if absent; the flag says "created".

        Concurrent first calls race on the unique subject: the loser's insert fails
        inside a savepoint and it reads the winner's row instead.
        """
        row = self._by_subject(identity.subject)
        if row is None:
            row = UserRow(
                id=new_id(),
                subject=identity.subject,
                username=identity.username,
                email=identity.email,
                email_verified=identity.email_verified,
                display_name=identity.display_name,
                create_time=now,
                update_time=now,
            )
            new_row = row
            if flush_unique(self._session, lambda: self._session.add(new_row)):
                return to_user(row), True
            row = self._by_subject(identity.subject)
            assert row is not None, "a concurrent insert won the race, so the row exists"
        if _profile_changed(row, identity):
            row.username = identity.username
            row.email = identity.email
            row.email_verified = identity.email_verified
            row.display_name = identity.display_name
            row.update_time = now
        return to_user(row), False

    def _by_subject(self, subject: str) -> UserRow | None:
        return self._session.scalars(select(UserRow).where(UserRow.subject == subject)).first()


def _profile_changed(row: UserRow, identity: Identity) -> bool:
    return (row.username, row.email, row.email_verified, row.display_name) != (
        identity.username,
        identity.email,
        identity.email_verified,
        identity.display_name,
    )


def to_user(row: UserRow) -> User:
    return User(
        id=row.id,
        subject=row.subject,
        username=row.username,
        email=row.email,
        display_name=row.display_name,
        create_time=row.create_time,
    )
