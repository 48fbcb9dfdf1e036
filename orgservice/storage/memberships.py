"""Memberships: who belongs to which organization, with which role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from orgservice.domain.models import (
    Cursor,
    Member,
    Membership,
    OrganizationState,
    Page,
    PageRequest,
)
from orgservice.storage.paging import AnyRow, fetch_page
from orgservice.storage.tables import MembershipRow, OrganizationRow, RoleRow, UserRow
from orgservice.storage.users import to_user


@dataclass(frozen=True)
class AccessRecord:
    """An organization as one user sees it: its state and the user's role, if any."""

    organization_id: str
    state: OrganizationState
    role: str | None
    permissions: frozenset[str]


class MembershipRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, organization_id: str, user_id: str, role: str, now: datetime) -> None:
        self._session.add(
            MembershipRow(
                organization_id=organization_id,
                user_id=user_id,
                role=role,
                create_time=now,
                update_time=now,
            )
        )
        self._session.flush()

    def access(
        self, organization_id: str, user_id: str, *, lock: bool = False
    ) -> AccessRecord | None:
        """One indexed query: the organization, the user's role and its permissions.

        `lock` takes the organization row FOR UPDATE, serializing every mutation that
        must see a consistent set of members (the last-owner rule and friends).
        """
        query = (
            select(
                OrganizationRow.id,
                OrganizationRow.state,
                MembershipRow.role,
                RoleRow.permissions,
            )
            .select_from(OrganizationRow)
            .outerjoin(
                MembershipRow,
                (MembershipRow.organization_id == OrganizationRow.id)
                & (MembershipRow.user_id == user_id),
            )
            .outerjoin(
                RoleRow,
                (RoleRow.organization_id == MembershipRow.organization_id)
                & (RoleRow.name == MembershipRow.role),
            )
            .where(OrganizationRow.id == organization_id)
        )
        if lock:
            query = query.with_for_update(of=OrganizationRow)
        row = self._session.execute(query).first()
        if row is None:
            return None
        org_id, state, role, permissions = row
        return AccessRecord(org_id, OrganizationState(state), role, frozenset(permissions or ()))

    def get(self, organization_id: str, user_id: str) -> Member | None:
        row = self._session.execute(
            _MEMBERS.where(
                MembershipRow.organization_id == organization_id,
                MembershipRow.user_id == user_id,
            )
        ).first()
        return _to_member(row) if row else None

    def find_page(self, organization_id: str, role: str, page: PageRequest) -> Page[Member]:
        query = _MEMBERS.where(MembershipRow.organization_id == organization_id)
        if role:
            query = query.where(MembershipRow.role == role)
        rows, total, next_cursor = fetch_page(
            self._session,
            query,
            create_time=MembershipRow.create_time,
            id_column=MembershipRow.user_id,
            page=page,
            cursor_of=_cursor_of,
        )
        return Page([_to_member(row) for row in rows], total, next_cursor)

    def count_with_role(self, organization_id: str, role: str) -> int:
        return (
            self._session.scalar(
                select(func.count()).where(
                    MembershipRow.organization_id == organization_id, MembershipRow.role == role
                )
            )
            or 0
        )

    def has_member_with_email(self, organization_id: str, email: str) -> bool:
        found = self._session.scalar(
            select(MembershipRow.user_id)
            .join(UserRow, UserRow.id == MembershipRow.user_id)
            .where(
                MembershipRow.organization_id == organization_id,
                func.lower(UserRow.email) == email.lower(),
            )
            .limit(1)
        )
        return found is not None

    def set_role(self, organization_id: str, user_id: str, role: str, now: datetime) -> None:
        row = self._session.get_one(MembershipRow, (organization_id, user_id))
        row.role = role
        row.update_time = now
        self._session.flush()

    def remove(self, organization_id: str, user_id: str) -> None:
        self._session.execute(
            delete(MembershipRow).where(
                MembershipRow.organization_id == organization_id,
                MembershipRow.user_id == user_id,
            )
        )

    def of_user(self, user_id: str) -> list[Membership]:
        """The user's memberships in active organizations, oldest first."""
        rows = self._session.execute(
            select(MembershipRow.organization_id, OrganizationRow.slug, MembershipRow.role)
            .join(OrganizationRow, OrganizationRow.id == MembershipRow.organization_id)
            .where(
                MembershipRow.user_id == user_id,
                OrganizationRow.state == OrganizationState.ACTIVE.value,
            )
            .order_by(MembershipRow.create_time, MembershipRow.organization_id)
        ).all()
        return [Membership(org_id, slug, role) for org_id, slug, role in rows]


_MEMBERS = select(MembershipRow, UserRow).join(UserRow, UserRow.id == MembershipRow.user_id)


def _cursor_of(row: AnyRow) -> Cursor:
    membership: MembershipRow = row[0]
    return Cursor(membership.create_time, membership.user_id)


def _to_member(row: AnyRow) -> Member:
    membership: MembershipRow = row[0]
    return Member(
        organization_id=membership.organization_id,
        user=to_user(row[1]),
        role=membership.role,
        create_time=membership.create_time,
        update_time=membership.update_time,
    )
