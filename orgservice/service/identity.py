"""Who is calling: users are provisioned on their first authenticated call (and may
auto-join an organization then, and on GetCurrentUser)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from orgservice.domain.budget import Budget
from orgservice.domain.budget import WouldBlock
from orgservice.domain.models import Call
from orgservice.domain.models import Caller
from orgservice.domain.models import Identity
from orgservice.domain.models import Membership
from orgservice.domain.models import OrganizationFields
from orgservice.domain.models import User
from orgservice.domain.validation import new_id
from orgservice.service.auto_join import AutoJoin
from orgservice.service.clock import Clock
from orgservice.service.clock import system_clock
from orgservice.service.organizations import insert_organization
from orgservice.service.ports import Database
from orgservice.service.use_cases import UseCases

# Distinct identities remembered per process; a miss costs one small transaction.
_CACHED_IDENTITIES = 16_384


class IdentityService(UseCases):
    def __init__(
        self,
        database: Database,
        clock: Clock = system_clock,
        *,
        personal_organizations: bool = True,
    ) -> None:
        super().__init__(database, clock)
        self._personal_organizations = personal_organizations
        self._auto_join = AutoJoin(database, clock)
        # Keyed by every claim the user record holds, so a changed claim refreshes it.
        self._user_ids: OrderedDict[Identity, str] = OrderedDict()
        self._lock = threading.Lock()

    def caller_for(self, identity: Identity, budget: Budget) -> Caller:
        return self._caller(identity, self._user_id_for(identity, budget))

    def current_user(self, call: Call) -> tuple[User, list[Membership]]:
        self._auto_join.run(call.caller, call.budget)
        with self._database.snapshot(call.budget) as uow:
            user = uow.users.get(call.caller.user_id)
            assert user is not None, "callers are provisioned before they reach a use case"
            return user, uow.memberships.of_user(call.caller.user_id)

    def _user_id_for(self, identity: Identity, budget: Budget) -> str:
        with self._lock:
            user_id = self._user_ids.get(identity)
            if user_id is not None:
                self._user_ids.move_to_end(identity)
                return user_id
        if not budget.may_block:
            raise WouldBlock()
        user_id = self._provision(identity, budget)
        self._auto_join.run(self._caller(identity, user_id), budget)
        with self._lock:
            self._user_ids[identity] = user_id
            if len(self._user_ids) > _CACHED_IDENTITIES:
                self._user_ids.popitem(last=False)
        return user_id

    @staticmethod
    def _caller(identity: Identity, user_id: str) -> Caller:
        return Caller(
            user_id=user_id,
            subject=identity.subject,
            is_platform=identity.is_platform,
            email=identity.email,
            email_verified=identity.email_verified,
            profile=identity.profile,
        )

    def _provision(self, identity: Identity, budget: Budget) -> str:
        """Creates or refreshes the user; a new user also gets a personal organization,
        exactly once even when first calls race (the user insert decides the winner)."""
        with self._database.transaction(budget) as uow:
            now = self._clock()
            user, created = uow.users.ensure(identity, now)
            if created and self._personal_organizations:
                owner = Caller(user_id=user.id, subject=user.subject, profile=identity.profile)
                insert_organization(
                    uow,
                    owner,
                    new_id(),
                    OrganizationFields(name=_personal_name(identity), description=""),
                    personal=True,
                    now=now,
                    slug_source=identity.username or identity.email.partition("@")[0],
                )
            uow.commit()
            return user.id


def _personal_name(identity: Identity) -> str:
    who = identity.display_name or identity.username or identity.email.partition("@")[0]
    who = "".join(ch for ch in who if ch.isprintable()).strip()[:150]
    return f"{who}'s organization" if who else "Personal organization"
