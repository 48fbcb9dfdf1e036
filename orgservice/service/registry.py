"""Every use-case service, built over one database."""

from __future__ import annotations

from dataclasses import dataclass

from orgservice.service.clock import Clock, system_clock
from orgservice.service.identity import IdentityService
from orgservice.service.organizations import OrganizationService
from orgservice.storage.unit_of_work import Database


@dataclass(frozen=True)
class Services:
    identities: IdentityService
    organizations: OrganizationService

    @classmethod
    def build(
        cls, database: Database, *, clock: Clock = system_clock, personal_organizations: bool = True
    ) -> Services:
        return cls(
            identities=IdentityService(
                database, clock, personal_organizations=personal_organizations
            ),
            organizations=OrganizationService(database, clock),
        )
