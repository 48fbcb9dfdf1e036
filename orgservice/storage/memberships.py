"""Memberships: who belongs to which organization, with which role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orgservice.domain.models import Membership, OrganizationState
from orgservice.storage.tables import MembershipRow, OrganizationRow, RoleRow


@dataclass(frozen=True)
class AccessRecord:
    """An organization as one caller sees it: its state and the caller's role, if any."""

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

    def access(
        self, organization_id: str, user_id: str, *, lock: bool = False
    ) -> AccessRecord | None:
        """One indexed query: the organization, the user's role and its permissions.

        `lock` takes the organization row FOR UPDATE, serializing every mutation that
        must see a consistent set of members (the last-owner rule and friends).
        """
        query = (
            select(
                OrganizationRow.id, OrganizationRow.state, MembershipRow.role, RoleRow.permissions
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
