"""The permission vocabulary and the built-in roles (the contract's authorization table)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ORGANIZATIONS_GET = "organizations.get"
ORGANIZATIONS_UPDATE = "organizations.update"
ORGANIZATIONS_DELETE = "organizations.delete"
ORGANIZATIONS_UNDELETE = "organizations.undelete"
MEMBERS_LIST = "members.list"
MEMBERS_ADD = "members.add"
MEMBERS_UPDATE = "members.update"
MEMBERS_REMOVE = "members.remove"
INVITATIONS_LIST = "invitations.list"
INVITATIONS_CREATE = "invitations.create"
INVITATIONS_UPDATE = "invitations.update"
INVITATIONS_REVOKE = "invitations.revoke"
WORKSPACES_LIST = "workspaces.list"
WORKSPACES_GET = "workspaces.get"
WORKSPACES_CREATE = "workspaces.create"
WORKSPACES_UPDATE = "workspaces.update"
WORKSPACES_DELETE = "workspaces.delete"
ROLES_LIST = "roles.list"
ROLES_CREATE = "roles.create"
ROLES_UPDATE = "roles.update"
ROLES_DELETE = "roles.delete"
AUDIT_LIST = "audit.list"
DOMAINS_LIST = "domains.list"
DOMAINS_MANAGE = "domains.manage"

_VIEWER = (ORGANIZATIONS_GET, MEMBERS_LIST, WORKSPACES_LIST, WORKSPACES_GET, ROLES_LIST)
_DEVELOPER = (*_VIEWER, WORKSPACES_CREATE, WORKSPACES_UPDATE)
_ADMIN = (
    *_DEVELOPER,
    ORGANIZATIONS_UPDATE,
    MEMBERS_ADD,
    MEMBERS_UPDATE,
    MEMBERS_REMOVE,
    INVITATIONS_LIST,
    INVITATIONS_CREATE,
    INVITATIONS_UPDATE,
    INVITATIONS_REVOKE,
    WORKSPACES_DELETE,
    ROLES_CREATE,
    ROLES_UPDATE,
    ROLES_DELETE,
    AUDIT_LIST,
    DOMAINS_LIST,
    DOMAINS_MANAGE,
)
_OWNER = (*_ADMIN, ORGANIZATIONS_DELETE, ORGANIZATIONS_UNDELETE)

ALL_PERMISSIONS: frozenset[str] = frozenset(_OWNER)
# Custom roles may hold anything but the power to delete the organization itself.
OWNER_ONLY_PERMISSIONS: frozenset[str] = frozenset({ORGANIZATIONS_DELETE, ORGANIZATIONS_UNDELETE})
CUSTOM_ROLE_PERMISSIONS: frozenset[str] = ALL_PERMISSIONS - OWNER_ONLY_PERMISSIONS

OWNER = "owner"
ADMIN = "admin"
DEVELOPER = "developer"
VIEWER = "viewer"


@dataclass(frozen=True)
class BuiltInRole:
    name: str
    description: str
    permissions: tuple[str, ...]


BUILT_IN_ROLES: tuple[BuiltInRole, ...] = (
    BuiltInRole(OWNER, "Full control, including deleting the organization.", _OWNER),
    BuiltInRole(ADMIN, "Manages members, invitations, roles, workspaces and domains.", _ADMIN),
    BuiltInRole(DEVELOPER, "Creates and updates workspaces.", _DEVELOPER),
    BuiltInRole(VIEWER, "Reads the organization, its members, roles and workspaces.", _VIEWER),
)


def sorted_permissions(permissions: Iterable[str]) -> list[str]:
    """Permissions in a stable order (the table's order), for storage and display."""
    order = {permission: index for index, permission in enumerate(_OWNER)}
    return sorted(set(permissions), key=lambda p: order.get(p, len(order)))
