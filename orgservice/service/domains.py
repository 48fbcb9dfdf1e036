"""Domain use cases: claim a domain, prove control of it through a DNS TXT record,
list and delete. Verified domains drive auto-join and invitation restrictions
(`service.auto_join`, `service.policies`)."""

from __future__ import annotations

import secrets
import time

from orgservice.domain.authorization import Requirement
from orgservice.domain.authorization import to_change
from orgservice.domain.authorization import to_read
from orgservice.domain.errors import DomainExists
from orgservice.domain.errors import DomainLimitReached
from orgservice.domain.errors import DomainNotFound
from orgservice.domain.errors import DomainNotVerified
from orgservice.domain.errors import DomainTaken
from orgservice.domain.models import Call
from orgservice.domain.models import Domain
from orgservice.domain.models import DomainState
from orgservice.domain.permissions import DOMAINS_LIST
from orgservice.domain.permissions import DOMAINS_MANAGE
from orgservice.domain.validation import domain_name
from orgservice.service import audit
from orgservice.service.authorization import authorize
from orgservice.service.clock import Clock
from orgservice.service.clock import system_clock
from orgservice.service.ports import Database
from orgservice.service.ports import TxtResolver
from orgservice.service.ports import UnitOfWork
from orgservice.service.use_cases import UseCases

LIST = to_read(DOMAINS_LIST)
MANAGE = to_change(DOMAINS_MANAGE)
# VerifyDomain's first look, before it asks DNS: the checks of a change (a deleted
# organization is refused) without the organization row lock, which is never held
# while waiting for DNS.
PREPARE_VERIFY = Requirement(DOMAINS_MANAGE)
MAX_DOMAINS = 100
# VerifyDomain waits for DNS at most this long, counted from its start (so a silent
# resolver yields UNAVAILABLE within it), and never beyond the call's budget.
DNS_TIMEOUT_SECONDS = 2.0
# Kept back from either bound, to send the answer in time.
_ANSWER_MARGIN_SECONDS = 0.05


class DomainService(UseCases):
    def __init__(
        self, database: Database, resolver: TxtResolver, clock: Clock = system_clock
    ) -> None:
        super().__init__(database, clock)
        self._resolver = resolver

    def create(self, call: Call, organization_id: str, name: str) -> Domain:
        with self._database.transaction(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, MANAGE).organization_id
            name = domain_name(name)
            now = self._clock()
            if not uow.domains.add(organization_id, name, secrets.token_hex(16), now):
                raise DomainExists(name)
            # Counted under the organization row lock, so concurrent creates cannot
            # overshoot the limit.
            if uow.domains.count(organization_id) > MAX_DOMAINS:
                raise DomainLimitReached(MAX_DOMAINS)
            audit.record(
                uow,
                call.caller,
                organization_id,
                "domain.created",
                now,
                target_type="domain",
                target_id=name,
            )
            domain = _load(uow, organization_id, name)
            uow.commit()
            return domain

    def verify(self, call: Call, organization_id: str, name: str) -> Domain:
        """Three steps, so that no transaction (nor the organization row lock) is held
        while DNS answers: read the challenge, ask DNS, record the result."""
        dns_deadline = time.monotonic() + DNS_TIMEOUT_SECONDS
        with self._database.snapshot(call.budget) as uow:
            organization_id = authorize(
                uow, call.caller, organization_id, PREPARE_VERIFY
            ).organization_id
            domain = _load(uow, organization_id, domain_name(name))
            if domain.state is DomainState.VERIFIED:
                return domain
            holder = uow.domains.holder(domain.name)
        if holder is not None:
            raise DomainTaken(domain.name)
        found = self._resolver.txt_strings(domain.record_name, _dns_timeout(call, dns_deadline))
        if domain.record_value not in found:
            raise DomainNotVerified(domain.record_name)
        with self._database.transaction(call.budget) as uow:
            authorize(uow, call.caller, organization_id, MANAGE)
            current = _load(uow, organization_id, domain.name)
            if current.state is DomainState.VERIFIED:
                return current
            if current.token != domain.token:  # deleted and claimed again meanwhile
                raise DomainNotVerified(domain.record_name)
            now = self._clock()
            # The registry insert decides between organizations verifying at once.
            if not uow.domains.verify(organization_id, current.name, now):
                raise DomainTaken(current.name)
            audit.record(
                uow,
                call.caller,
                organization_id,
                "domain.verified",
                now,
                target_type="domain",
                target_id=current.name,
            )
            verified = _load(uow, organization_id, current.name)
            uow.commit()
            return verified

    def list(self, call: Call, organization_id: str) -> list[Domain]:
        with self._database.snapshot(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, LIST).organization_id
            return uow.domains.of_organization(organization_id)

    def delete(self, call: Call, organization_id: str, name: str) -> None:
        with self._database.transaction(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, MANAGE).organization_id
            domain = _load(uow, organization_id, domain_name(name))
            uow.domains.delete(organization_id, domain.name)
            audit.record(
                uow,
                call.caller,
                organization_id,
                "domain.deleted",
                self._clock(),
                target_type="domain",
                target_id=domain.name,
                state=domain.state.value,
            )
            uow.commit()


def _dns_timeout(call: Call, deadline: float) -> float:
    """What is left until `deadline` or the end of the call's budget, whichever is
    sooner, less the margin to answer."""
    call.budget.check(_ANSWER_MARGIN_SECONDS)
    left = min(deadline - time.monotonic(), call.budget.remaining())
    return max(0.0, left - _ANSWER_MARGIN_SECONDS)


def _load(uow: UnitOfWork, organization_id: str, name: str) -> Domain:
    domain = uow.domains.get(organization_id, name)
    if domain is None:
        raise DomainNotFound()
    return domain
