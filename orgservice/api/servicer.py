"""OrganizationService: each RPC parses its request, calls one use case and converts
the result. The RPCs live in modules by resource; this class puts them together, and
`api.dispatch` checks at start-up that it has a method for every RPC of the contract."""

from __future__ import annotations

from orgservice.api.audit import AuditRpcs
from orgservice.api.domains import DomainRpcs
from orgservice.api.invitations import InvitationRpcs
from orgservice.api.members import MemberRpcs
from orgservice.api.organizations import OrganizationRpcs
from orgservice.api.permissions import PermissionRpcs
from orgservice.api.roles import RoleRpcs
from orgservice.api.users import UserRpcs
from orgservice.api.workspaces import WorkspaceRpcs


class OrganizationServicer(
    UserRpcs,
    OrganizationRpcs,
    MemberRpcs,
    RoleRpcs,
    PermissionRpcs,
    AuditRpcs,
    InvitationRpcs,
    WorkspaceRpcs,
    DomainRpcs,
):
    """Every RPC of orgs.v1.OrganizationService."""
