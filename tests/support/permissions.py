"""The built-in roles' permissions as the contract states them (API.md, "Authorization").

Restated here on purpose, once, rather than read from orgservice.domain.permissions: the
tests that check the service against the contract must fail when the code's table drifts
from it. Tests that merely need some role's permissions read them from the code."""

from __future__ import annotations

_VIEWER = ("organizations.get", "members.list", "workspaces.list", "workspaces.get", "roles.list")
_DEVELOPER = (*_VIEWER, "workspaces.create", "workspaces.update")
_ADMIN = (
    *_DEVELOPER,
    "organizations.update",
    "members.add",
    "members.update",
    "members.remove",
    "invitations.list",
    "invitations.create",
    "invitations.update",
    "invitations.revoke",
    "workspaces.delete",
    "roles.create",
    "roles.update",
    "roles.delete",
    "audit.list",
    # Release 2 ("Domains and membership policies"): owner and admin.
    "domains.list",
    "domains.manage",
)
_OWNER = (*_ADMIN, "organizations.delete", "organizations.undelete")

# Role name -> its permissions, in the contract's order.
CONTRACT_ROLES: dict[str, tuple[str, ...]] = {
    "owner": _OWNER,
    "admin": _ADMIN,
    "developer": _DEVELOPER,
    "viewer": _VIEWER,
}
BUILT_IN: dict[str, frozenset[str]] = {
    role: frozenset(permissions) for role, permissions in CONTRACT_ROLES.items()
}
# Release 2 gave these to the built-in owner and admin roles (migration 0004).
DOMAIN_PERMISSIONS = frozenset({"domains.list", "domains.manage"})
