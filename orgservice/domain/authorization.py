"""The one authorization decision: who may do what in an organization.

`decide` is pure: it takes what the database (or the cache) knows about one user in one
organization and answers allowed, or which error the caller gets. Use cases declare what
they need once, as a `Requirement`; CheckPermission and the read cache use `decide` too.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from orgservice.domain.errors import DomainError
from orgservice.domain.errors import OrganizationDeleted
from orgservice.domain.errors import OrganizationNotFound
from orgservice.domain.errors import missing_permission
from orgservice.domain.models import AccessRecord
from orgservice.domain.models import OrganizationState
from orgservice.domain.permissions import ALL_PERMISSIONS
from orgservice.domain.permissions import ORGANIZATIONS_UNDELETE
from orgservice.domain.permissions import OWNER


@dataclass(frozen=True)
class Requirement:
    """What a use case needs in the organization it acts on."""

    permission: str | None  # None: being a member is enough
    # Reads (and undelete) see a soft-deleted organization, for those who may undelete it.
    allow_deleted: bool = False
    # Mutations lock the organization row: every rule that spans rows (last owner, one
    # pending invitation per email, member limits) is checked under that lock.
    lock: bool = False


def to_read(permission: str) -> Requirement:
    return Requirement(permission, allow_deleted=True)


def to_change(permission: str | None, *, allow_deleted: bool = False) -> Requirement:
    return Requirement(permission, allow_deleted=allow_deleted, lock=True)


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    NOT_FOUND = "not found"  # no such organization, or the caller may not know it exists
    DENIED = "denied"  # a member without the permission
    DELETED = "deleted"  # visible to the caller, but deleted and the use case needs it live


@dataclass(frozen=True)
class Access:
    """What the caller may do in one organization, once allowed."""

    organization_id: str
    role: str | None  # None for a platform caller who is not a member
    permissions: frozenset[str]
    is_platform: bool

    @property
    def acts_as_owner(self) -> bool:
        return self.is_platform or self.role == OWNER

    def missing(self, permissions: Collection[str]) -> list[str]:
        """The permissions among `permissions` the caller could not grant: owners (and
        platform callers) grant anything, others only what they hold themselves, so a
        custom role with `members.add` or `roles.create` cannot escalate privileges."""
        if self.acts_as_owner:
            return []
        return sorted(set(permissions) - self.permissions)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    access: Access
    permission: str | None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED

    def enforce(self) -> Access:
        """The access when allowed; otherwise raises what the caller must see."""
        if self.verdict is Verdict.ALLOWED:
            return self.access
        raise self.error()

    def error(self) -> DomainError:
        if self.verdict is Verdict.NOT_FOUND:
            return OrganizationNotFound()
        if self.verdict is Verdict.DELETED:
            return OrganizationDeleted()
        assert self.permission is not None, "membership alone is never denied"
        return missing_permission(self.permission)


def decide(
    organization_id: str,
    record: AccessRecord | None,
    requirement: Requirement,
    *,
    is_platform: bool,
) -> Decision:
    """The decision for a caller whose standing in the organization is `record` (None:
    no such organization). Platform callers act as owners everywhere.

    Non-members get NOT_FOUND whether or not the organization exists. A soft-deleted
    organization exists only for those who may undelete it, and only for requirements
    that `allow_deleted`; for the others it is DELETED.
    """
    role = record.role if record else None
    permissions = (
        ALL_PERMISSIONS if is_platform else (record.permissions if record else frozenset())
    )
    access = Access(organization_id, role, permissions, is_platform)
    permission = requirement.permission

    def verdict() -> Verdict:
        if record is None or (role is None and not is_platform):
            return Verdict.NOT_FOUND
        if record.state is OrganizationState.DELETED:
            if ORGANIZATIONS_UNDELETE not in permissions:
                return Verdict.NOT_FOUND
            if not requirement.allow_deleted:
                return Verdict.DELETED
        if permission is not None and permission not in permissions:
            return Verdict.DENIED
        return Verdict.ALLOWED

    return Decision(verdict(), access, permission)
