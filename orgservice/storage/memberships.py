"""Memberships: who belongs to which organization, with which role."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime

from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update

from orgservice.domain.models import AccessRecord
from orgservice.domain.models import Member
from orgservice.domain.models import Membership
from orgservice.domain.models import Organization
from orgservice.domain.models import OrganizationState
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.storage.member_search import MemberSearchIndex
from orgservice.storage.member_search import plan_search
from orgservice.storage.organizations import OrganizationRepository
from orgservice.storage.organizations import to_organization
from orgservice.storage.paging import Pager
from orgservice.storage.rows import AnyRow
from orgservice.storage.rows import from_row
from orgservice.storage.sql import Sql
from orgservice.storage.tables import memberships
from orgservice.storage.tables import organizations
from orgservice.storage.tables import roles
from orgservice.storage.tables import users
from orgservice.storage.users import USER_COLUMNS
from orgservice.storage.users import to_user

# The permissions of the member's role: a scalar subquery, run for the one membership
# through the roles' primary key whatever the statistics. As a join, a generic plan
# bound the organization alone and filtered the name: a scan of all its roles.
_ROLE_PERMISSIONS = (
    select(roles.c.permissions)
    .where(
        roles.c.organization_id == memberships.c.organization_id, roles.c.name == memberships.c.role
    )
    .scalar_subquery()
)
# One indexed query: the organization's state, the user's role and its permissions.
_ACCESS = (
    select(organizations.c.state, memberships.c.role, _ROLE_PERMISSIONS.label("permissions"))
    .select_from(organizations)
    .outerjoin(
        memberships,
        and_(
            memberships.c.organization_id == organizations.c.id,
            memberships.c.user_id == bindparam("user_id"),
        ),
    )
    .where(organizations.c.id == bindparam("organization_id"))
)
# FOR UPDATE of the organization row serializes every mutation that must see a
# consistent set of members (the last-owner rule and friends).
_ACCESS_LOCKED = _ACCESS.with_for_update(of=organizations)
# The organization itself with the user's standing in it: a Get in one round trip.
_SEEN_BY = _ACCESS.with_only_columns(
    organizations,
    memberships.c.role.label("member_role"),
    _ROLE_PERMISSIONS.label("role_permissions"),
)
_INSERT = insert(memberships)
_MEMBERS = select(memberships, *USER_COLUMNS).join(users, users.c.id == memberships.c.user_id)
_MEMBER = _MEMBERS.where(
    memberships.c.organization_id == bindparam("organization_id"),
    memberships.c.user_id == bindparam("user_id"),
)
_IN_ORGANIZATION = _MEMBERS.where(memberships.c.organization_id == bindparam("organization_id"))
_ALL = Pager(
    _IN_ORGANIZATION, create_time=memberships.c.create_time, id_column=memberships.c.user_id
)
_PAGES = {False: _ALL, True: _ALL.narrowed(memberships.c.role == bindparam("role"))}


class MembershipRepository:
    def __init__(
        self, sql: Sql, organizations: OrganizationRepository, search: MemberSearchIndex
    ) -> None:
        self._sql = sql
        self._organizations = organizations
        self._search = search

    def access(
        self, organization_id: str, user_id: str, *, lock: bool = False
    ) -> AccessRecord | None:
        """The user's standing in the organization (None: no such organization);
        `lock` takes the organization row FOR UPDATE."""
        if lock:
            self._sql.touch(organization_id)
        row = self._sql.execute(
            _ACCESS_LOCKED if lock else _ACCESS,
            {"organization_id": organization_id, "user_id": user_id},
        ).first()
        if row is None:
            return None
        state, role, permissions = row[0], row[1], row[2]
        return AccessRecord(OrganizationState(state), role, frozenset(permissions or ()))

    def organization_seen_by(
        self, organization_id: str, user_id: str
    ) -> tuple[Organization, AccessRecord] | None:
        """The organization and the user's standing in it, in one query."""
        row = self._sql.execute(
            _SEEN_BY, {"organization_id": organization_id, "user_id": user_id}
        ).first()
        if row is None:
            return None
        m = row._mapping
        record = AccessRecord(
            OrganizationState(m["state"]), m["member_role"], frozenset(m["role_permissions"] or ())
        )
        return to_organization(row), record

    def add(self, organization_id: str, user_id: str, role: str, now: datetime) -> None:
        self._sql.execute(
            _INSERT,
            {
                "organization_id": organization_id,
                "user_id": user_id,
                "role": role,
                "create_time": now,
                "update_time": now,
            },
        )
        self._organizations.count_change(organization_id, members=1)
        self._search.add(organization_id, user_id, now)

    def get(self, organization_id: str, user_id: str) -> Member | None:
        row = self._sql.execute(
            _MEMBER, {"organization_id": organization_id, "user_id": user_id}
        ).first()
        return _to_member(row) if row else None

    def find_page(
        self,
        organization_id: str,
        role: str,
        page: PageRequest,
        *,
        total: int | None,
        query: str = "",
    ) -> Page[Member]:
        """`total`: the organization's member count; `query`: folded search text
        (domain.search). With a query, total_size may be an estimate (AIP-158)."""
        parameters = {"organization_id": organization_id, "role": role}
        pager = _PAGES[bool(role)]
        if not query:
            return pager.fetch(
                self._sql, page, parameters, _to_member, total=None if role else total
            )
        search = plan_search(
            self._sql,
            organization_id,
            query,
            role=role,
            member_count=total or 0,
            page_size=page.limit,
        )
        # The search's condition depends on the query: its statements are built per call.
        total = search.estimated_total
        found = pager.narrowed(search.condition).fetch(
            self._sql, page, parameters, _to_member, total=total
        )
        if total is not None:
            # An estimate, but never fewer than the members this page shows.
            shown = len(found.items) + (1 if found.next_cursor else 0)
            return replace(found, total_size=max(total, shown))
        return found

    def count_with_role(self, organization_id: str, role: str) -> int:
        count: int = self._sql.execute(
            select(func.count()).where(
                memberships.c.organization_id == organization_id, memberships.c.role == role
            )
        ).scalar_one()
        return count

    def has_member_with_email(self, organization_id: str, email: str) -> bool:
        found = self._sql.execute(
            select(memberships.c.user_id)
            .join(users, users.c.id == memberships.c.user_id)
            .where(
                memberships.c.organization_id == organization_id,
                func.lower(users.c.email) == email.lower(),
            )
            .limit(1)
        ).first()
        return found is not None

    def set_role(self, organization_id: str, user_id: str, role: str, now: datetime) -> None:
        self._sql.execute(
            update(memberships)
            .where(
                memberships.c.organization_id == organization_id, memberships.c.user_id == user_id
            )
            .values(role=role, update_time=now)
        )

    def remove(self, organization_id: str, user_id: str) -> None:
        removed = self._sql.execute(
            delete(memberships).where(
                memberships.c.organization_id == organization_id, memberships.c.user_id == user_id
            )
        ).rowcount
        self._organizations.count_change(organization_id, members=-removed)

    def permissions_in(
        self, user_id: str, organization_ids: Collection[str]
    ) -> dict[str, frozenset[str]]:
        """The permissions the user holds in each of the organizations (members only)."""
        if not organization_ids:
            return {}
        rows = self._sql.execute(
            select(memberships.c.organization_id, roles.c.permissions)
            .join(
                roles,
                and_(
                    roles.c.organization_id == memberships.c.organization_id,
                    roles.c.name == memberships.c.role,
                ),
            )
            .where(
                memberships.c.user_id == user_id,
                memberships.c.organization_id.in_(list(organization_ids)),
            )
        ).all()
        return {row[0]: frozenset(row[1]) for row in rows}

    def of_user(self, user_id: str) -> list[Membership]:
        """The user's memberships in active organizations, oldest first."""
        rows = self._sql.execute(
            select(memberships.c.organization_id, organizations.c.slug, memberships.c.role)
            .join(organizations, organizations.c.id == memberships.c.organization_id)
            .where(
                memberships.c.user_id == user_id,
                organizations.c.state == OrganizationState.ACTIVE.value,
            )
            .order_by(memberships.c.create_time, memberships.c.organization_id)
        ).all()
        return [Membership(row[0], row[1], row[2]) for row in rows]


def _to_member(row: AnyRow) -> Member:
    return from_row(Member, row, user=to_user(row))
