"""Auto-join: which organization a user's verified email domain lets them join, and
who joined that way (they are never auto-joined again)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import or_
from sqlalchemy import select

from orgservice.domain.models import OrganizationState
from orgservice.storage.sql import Repository
from orgservice.storage.sql import insert_if_absent
from orgservice.storage.tables import auto_joins
from orgservice.storage.tables import memberships
from orgservice.storage.tables import organizations
from orgservice.storage.tables import verified_domains

# Primary key lookups only: the name in the registry, its organization, and the user's
# membership and auto-join there. At most one row (one organization per verified name).
_CANDIDATE = (
    select(organizations.c.id)
    .select_from(verified_domains)
    .join(organizations, organizations.c.id == verified_domains.c.organization_id)
    .outerjoin(
        memberships,
        and_(
            memberships.c.organization_id == organizations.c.id,
            memberships.c.user_id == bindparam("user_id"),
        ),
    )
    .outerjoin(
        auto_joins,
        and_(
            auto_joins.c.organization_id == organizations.c.id,
            auto_joins.c.user_id == bindparam("user_id"),
        ),
    )
    .where(
        verified_domains.c.name == bindparam("domain"),
        organizations.c.state == OrganizationState.ACTIVE.value,
        organizations.c.auto_join_role != "",
        or_(
            organizations.c.max_members == 0,
            organizations.c.member_count < organizations.c.max_members,
        ),
        memberships.c.user_id.is_(None),
        auto_joins.c.user_id.is_(None),
    )
)


class AutoJoinRepository(Repository):
    def candidate(self, domain: str, user_id: str) -> str | None:
        """The organization the user may auto-join now through `domain`, if any: it
        verified the domain, is active, has auto-join on and a free seat, and the user
        is neither a member nor auto-joined it before. Re-check under its row lock."""
        found: str | None = self._sql.execute(
            _CANDIDATE, {"domain": domain, "user_id": user_id}
        ).scalar()
        return found

    def record(self, organization_id: str, user_id: str, now: datetime) -> bool:
        """Remembers the auto-join; False when the user auto-joined the organization before."""
        return insert_if_absent(
            self._sql,
            auto_joins,
            {"organization_id": organization_id, "user_id": user_id, "create_time": now},
        )
