"""Invitations. Expiry is evaluated when read: a stored "pending" row whose expire_time
has passed is EXPIRED, so no background job is needed for correctness."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from orgservice.domain.errors import AlreadyExists
from orgservice.domain.models import Cursor, Invitation, InvitationState, Page, PageRequest
from orgservice.storage.database import flush_unique
from orgservice.storage.paging import AnyRow, fetch_page
from orgservice.storage.tables import InvitationRow

_PENDING = InvitationState.PENDING.value


def invitation_pending(email: str) -> AlreadyExists:
    return AlreadyExists(
        f"a pending invitation for {email} exists already", reason="INVITATION_PENDING"
    )


def in_state(state: InvitationState, now: datetime) -> ColumnElement[bool]:
    """SQL for "effectively in `state` at `now`"."""
    live = InvitationRow.expire_time > now
    if state is InvitationState.PENDING:
        return and_(InvitationRow.state == _PENDING, live)
    if state is InvitationState.EXPIRED:
        return or_(
            InvitationRow.state == InvitationState.EXPIRED.value,
            and_(InvitationRow.state == _PENDING, ~live),
        )
    stored: ColumnElement[bool] = InvitationRow.state == state.value
    return stored


class InvitationRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(
        self,
        *,
        organization_id: str,
        invitation_id: str,
        email: str,
        role: str,
        inviter_user_id: str,
        token_hash: str,
        now: datetime,
        expire_time: datetime,
    ) -> None:
        """Raises AlreadyExists(INVITATION_PENDING) when the email has a pending one."""
        row = InvitationRow(
            organization_id=organization_id,
            id=invitation_id,
            email=email,
            role=role,
            state=_PENDING,
            inviter_user_id=inviter_user_id,
            token_hash=token_hash,
            create_time=now,
            update_time=now,
            expire_time=expire_time,
        )
        if not flush_unique(self._session, lambda: self._session.add(row)):
            raise invitation_pending(email)

    def get(self, invitation_id: str, now: datetime) -> Invitation | None:
        row = self._session.scalars(
            select(InvitationRow).where(InvitationRow.id == invitation_id)
        ).first()
        return _to_invitation(row, now) if row else None

    def get_by_token_hash(self, token_hash: str, now: datetime) -> Invitation | None:
        row = self._session.scalars(
            select(InvitationRow).where(InvitationRow.token_hash == token_hash)
        ).first()
        return _to_invitation(row, now) if row else None

    def stored_pending_for(
        self, organization_id: str, email: str, now: datetime
    ) -> Invitation | None:
        """The invitation holding the email's pending slot; it may read as EXPIRED."""
        row = self._session.scalars(
            select(InvitationRow).where(
                InvitationRow.organization_id == organization_id,
                InvitationRow.email == email,
                InvitationRow.state == _PENDING,
            )
        ).first()
        return _to_invitation(row, now) if row else None

    def find_page(
        self,
        organization_id: str,
        state: InvitationState | None,
        now: datetime,
        page: PageRequest,
    ) -> Page[Invitation]:
        query = select(InvitationRow).where(InvitationRow.organization_id == organization_id)
        if state is not None:
            query = query.where(in_state(state, now))
        return self._page(query, now, page)

    def find_pending_for_email(
        self, email: str, now: datetime, page: PageRequest
    ) -> Page[Invitation]:
        query = select(InvitationRow).where(
            InvitationRow.email == email, in_state(InvitationState.PENDING, now)
        )
        return self._page(query, now, page)

    def count_pending_with_role(self, organization_id: str, role: str, now: datetime) -> int:
        return (
            self._session.scalar(
                select(func.count()).where(
                    InvitationRow.organization_id == organization_id,
                    InvitationRow.role == role,
                    in_state(InvitationState.PENDING, now),
                )
            )
            or 0
        )

    def update(
        self,
        organization_id: str,
        invitation_id: str,
        now: datetime,
        *,
        state: InvitationState | None = None,
        role: str | None = None,
        expire_time: datetime | None = None,
        token_hash: str | None = None,
    ) -> Invitation:
        """Changes the given fields; raises AlreadyExists(INVITATION_PENDING) when a
        revived invitation collides with another pending one for the same email."""
        row = self._session.get_one(InvitationRow, (organization_id, invitation_id))

        def apply() -> None:
            if state is not None:
                row.state = state.value
            if role is not None:
                row.role = role
            if expire_time is not None:
                row.expire_time = expire_time
            if token_hash is not None:
                row.token_hash = token_hash
            row.update_time = now

        if not flush_unique(self._session, apply):
            raise invitation_pending(row.email)
        return _to_invitation(row, now)

    def _page(
        self, query: Select[InvitationRow], now: datetime, page: PageRequest
    ) -> Page[Invitation]:
        rows, total, next_cursor = fetch_page(
            self._session,
            query,
            create_time=InvitationRow.create_time,
            id_column=InvitationRow.id,
            page=page,
            cursor_of=_cursor_of,
        )
        return Page([_to_invitation(row[0], now) for row in rows], total, next_cursor)


def _cursor_of(row: AnyRow) -> Cursor:
    invitation: InvitationRow = row[0]
    return Cursor(invitation.create_time, invitation.id)


def _to_invitation(row: InvitationRow, now: datetime) -> Invitation:
    state = InvitationState(row.state)
    if state is InvitationState.PENDING and row.expire_time <= now:
        state = InvitationState.EXPIRED
    return Invitation(
        id=row.id,
        organization_id=row.organization_id,
        email=row.email,
        role=row.role,
        state=state,
        inviter_user_id=row.inviter_user_id,
        create_time=row.create_time,
        update_time=row.update_time,
        expire_time=row.expire_time,
    )
