"""Auto-join: a user whose verified email belongs to a domain an organization has
VERIFIED joins it with the organization's `auto_join_role`, once.

Runs when a user is provisioned and on GetCurrentUser. Finding nothing to join costs
one indexed query (none without a verified email); a join takes the organization row
lock like every membership change, so `max_members` holds under concurrent joins.
A full organization is skipped, not an error: the user's own call must not fail.
"""

from __future__ import annotations

from orgservice.domain.budget import Budget
from orgservice.domain.models import Caller
from orgservice.domain.models import OrganizationState
from orgservice.domain.validation import email_domain
from orgservice.service import audit
from orgservice.service.policies import has_free_seat
from orgservice.service.ports import UnitOfWork
from orgservice.service.use_cases import UseCases


class AutoJoin(UseCases):
    def run(self, user: Caller, budget: Budget) -> None:
        """Joins `user` to the organization their email's domain lets them join, if any."""
        domain = email_domain(user.email) if user.email_verified else None
        if domain is None:
            return
        with self._database.snapshot(budget, cached=False) as uow:
            organization_id = uow.auto_joins.candidate(domain, user.user_id)
        if organization_id is None:
            return
        with self._database.transaction(budget) as uow:
            if self._join(uow, user, organization_id, domain):
                uow.commit()

    def _join(self, uow: UnitOfWork, user: Caller, organization_id: str, domain: str) -> bool:
        """Re-checks the candidate under the organization row lock and joins."""
        record = uow.access(organization_id, user.user_id, lock=True)
        if record is None or record.state is not OrganizationState.ACTIVE:
            return False
        if record.role is not None:  # a member already
            return False
        organization = uow.organizations.get(organization_id)
        if organization is None:
            return False
        role = organization.settings.auto_join_role
        if (
            not role
            or not has_free_seat(organization)
            or uow.domains.holder(domain) != organization_id
        ):
            return False
        now = self._clock()
        if not uow.auto_joins.record(organization_id, user.user_id, now):
            return False  # joined this way before: left or was removed since
        uow.memberships.add(organization_id, user.user_id, role, now)
        audit.record(
            uow,
            user,
            organization_id,
            "member.auto_joined",
            now,
            target_type="member",
            target_id=user.user_id,
            role=role,
            domain=domain,
        )
        return True
