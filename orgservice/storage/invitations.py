"""Invitations. Expiry is evaluated when read: a stored "pending" row whose expire_time
has passed is EXPIRED, so no background job is needed for correctness."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import Select
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from orgservice.domain.errors import InvitationPending
from orgservice.domain.models import Invitation
from orgservice.domain.models import InvitationState
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.storage.paging import Pager
from orgservice.storage.rows import AnyRow
from orgservice.storage.rows import from_row
from orgservice.storage.sql import Repository
from orgservice.storage.tables import TIMESTAMP
from orgservice.storage.tables import invitations

_PENDING = InvitationState.PENDING.value
# Invitation fields stored as they are (the state is stored as its value).
_STORED = (
    "organization_id",
    "id",
    "email",
    "role",
    "inviter_user_id",
    "create_time",
    "update_time",
    "expire_time",
)
_BY_ID = select(invitations).where(invitations.c.id == bindparam("id"))
_BY_TOKEN_HASH = select(invitations).where(invitations.c.token_hash == bindparam("token_hash"))


def in_state(state: InvitationState) -> ColumnElement[bool]:
    """SQL for "effectively in `state` at the bound parameter `now`"."""
    live = invitations.c.expire_time > bindparam("now", type_=TIMESTAMP)
    if state is InvitationState.PENDING:
        return and_(invitations.c.state == _PENDING, live)
    if state is InvitationState.EXPIRED:
        return or_(
            invitations.c.state == InvitationState.EXPIRED.value,
            and_(invitations.c.state == _PENDING, ~live),
        )
    stored: ColumnElement[bool] = invitations.c.state == state.value
    return stored


def _pager(query: Select[Any]) -> Pager:
    return Pager(query, create_time=invitations.c.create_time, id_column=invitations.c.id)


_IN_ORGANIZATION = select(invitations).where(
    invitations.c.organization_id == bindparam("organization_id")
)
_BY_STATE: dict[InvitationState | None, Pager] = {
    None: _pager(_IN_ORGANIZATION),
    **{state: _pager(_IN_ORGANIZATION.where(in_state(state))) for state in InvitationState},
}
_PENDING_FOR_EMAIL = _pager(
    select(invitations).where(
        invitations.c.email == bindparam("email"), in_state(InvitationState.PENDING)
    )
)
_PENDING_WITH_ROLE = select(func.count()).where(
    invitations.c.organization_id == bindparam("organization_id"),
    invitations.c.role == bindparam("role"),
    in_state(InvitationState.PENDING),
)


class InvitationRepository(Repository):
    def add(self, invitation: Invitation, token_hash: str) -> None:
        """Raises InvitationPending when the email has a pending one."""
        values = {name: getattr(invitation, name) for name in _STORED}
        try:
            self._sql.execute(
                insert(invitations), {**values, "state": _PENDING, "token_hash": token_hash}
            )
        except IntegrityError as error:
            raise InvitationPending() from error

    def get(self, invitation_id: str, now: datetime) -> Invitation | None:
        row = self._sql.execute(_BY_ID, {"id": invitation_id}).first()
        return _to_invitation(row, now) if row else None

    def get_by_token_hash(self, token_hash: str, now: datetime) -> Invitation | None:
        row = self._sql.execute(_BY_TOKEN_HASH, {"token_hash": token_hash}).first()
        return _to_invitation(row, now) if row else None

    def stored_pending_for(
        self, organization_id: str, email: str, now: datetime
    ) -> Invitation | None:
        """The invitation holding the email's pending slot; it may read as EXPIRED."""
        row = self._sql.execute(
            select(invitations).where(
                invitations.c.organization_id == organization_id,
                invitations.c.email == email,
                invitations.c.state == _PENDING,
            )
        ).first()
        return _to_invitation(row, now) if row else None

    def find_page(
        self, organization_id: str, state: InvitationState | None, now: datetime, page: PageRequest
    ) -> Page[Invitation]:
        return _BY_STATE[state].fetch(
            self._sql,
            page,
            {"organization_id": organization_id, "now": now},
            lambda row: _to_invitation(row, now),
        )

    def find_pending_for_email(
        self, email: str, now: datetime, page: PageRequest
    ) -> Page[Invitation]:
        return _PENDING_FOR_EMAIL.fetch(
            self._sql, page, {"email": email, "now": now}, lambda row: _to_invitation(row, now)
        )

    def count_pending_with_role(self, organization_id: str, role: str, now: datetime) -> int:
        count: int = self._sql.execute(
            _PENDING_WITH_ROLE, {"organization_id": organization_id, "role": role, "now": now}
        ).scalar_one()
        return count

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
        """Changes the given fields. Reviving an invitation (state PENDING) needs the
        email's pending slot free: see `stored_pending_for`."""
        values: dict[str, Any] = {"update_time": now}
        for name, value in (
            ("state", state.value if state else None),
            ("role", role),
            ("expire_time", expire_time),
            ("token_hash", token_hash),
        ):
            if value is not None:
                values[name] = value
        row = self._sql.execute(
            update(invitations)
            .where(
                invitations.c.organization_id == organization_id, invitations.c.id == invitation_id
            )
            .values(**values)
            .returning(*invitations.c)
        ).one()
        return _to_invitation(row, now)


def _to_invitation(row: AnyRow, now: datetime) -> Invitation:
    columns = row._mapping
    state = InvitationState(columns["state"])
    if state is InvitationState.PENDING and columns["expire_time"] <= now:
        state = InvitationState.EXPIRED
    return from_row(Invitation, row, state=state)
