"""Every use-case service, built over one database."""

from __future__ import annotations

from dataclasses import dataclass

from orgservice.service.audit import AuditService
from orgservice.service.clock import Clock
from orgservice.service.clock import system_clock
from orgservice.service.domains import DomainService
from orgservice.service.feed import FeedService
from orgservice.service.identity import IdentityService
from orgservice.service.invitations import InvitationService
from orgservice.service.members import MemberService
from orgservice.service.organizations import OrganizationService
from orgservice.service.permission_checks import PermissionCheckService
from orgservice.service.ports import Database
from orgservice.service.ports import TxtResolver
from orgservice.service.roles import RoleService
from orgservice.service.workspaces import WorkspaceService


@dataclass(frozen=True)
class Services:
    identities: IdentityService
    organizations: OrganizationService
    members: MemberService
    roles: RoleService
    permission_checks: PermissionCheckService
    audit: AuditService
    feed: FeedService
    invitations: InvitationService
    workspaces: WorkspaceService
    domains: DomainService

    @classmethod
    def build(
        cls,
        database: Database,
        *,
        resolver: TxtResolver,
        clock: Clock = system_clock,
        personal_organizations: bool = True,
    ) -> Services:
        return cls(
            identities=IdentityService(
                database, clock, personal_organizations=personal_organizations
            ),
            organizations=OrganizationService(database, clock),
            members=MemberService(database, clock),
            roles=RoleService(database, clock),
            permission_checks=PermissionCheckService(database),
            audit=AuditService(database),
            feed=FeedService(database),
            invitations=InvitationService(database, clock),
            workspaces=WorkspaceService(database, clock),
            domains=DomainService(database, resolver, clock),
        )
