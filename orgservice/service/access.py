"""The one permission check every organization-scoped use case goes through."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from orgservice.domain.errors import FailedPrecondition, NotFound, PermissionDenied
from orgservice.domain.models import Caller, OrganizationState
from orgservice.domain.permissions import ALL_PERMISSIONS, ORGANIZATIONS_UNDELETE, OWNER
from orgservice.domain.validation import is_uuid
from orgservice.storage.unit_of_work import Database, UnitOfWork


@dataclass(frozen=True)
class Access:
    """What the caller may do in one organization."""

    organization_id: str
    role: str | None  # None for a platform caller who is not a member
    permissions: frozenset[str]
    is_platform: bool

    @property
    def acts_as_owner(self) -> bool:
        return self.is_platform or self.role == OWNER


def organization_not_found() -> NotFound:
    # One message for "does not exist" and "you are not a member": no existence leak.
    return NotFound("organization not found", reason="ORGANIZATION_NOT_FOUND")


def authorize(
    uow: UnitOfWork,
    caller: Caller,
    organization_id: str,
    permission: str | None,
    *,
    lock: bool = False,
    allow_deleted: bool = False,
) -> Access:
    """Checks that `caller` holds `permission` in the organization, before anything else
    (`None`: being a member is enough).

    Non-members get NOT_FOUND whether or not the organization exists. A soft-deleted
    organization exists only for those who may undelete it, and only for the use cases
    that pass `allow_deleted`; for the rest it is FAILED_PRECONDITION.
    """
    if not is_uuid(organization_id):
        raise organization_not_found()
    record = uow.memberships.access(organization_id, caller.user_id, lock=lock)
    if record is None or (record.role is None and not caller.is_platform):
        raise organization_not_found()
    permissions = ALL_PERMISSIONS if caller.is_platform else record.permissions
    if record.state is OrganizationState.DELETED:
        if ORGANIZATIONS_UNDELETE not in permissions:
            raise organization_not_found()
        if not allow_deleted:
            raise FailedPrecondition(
                "the organization is deleted; undelete it first", reason="ORGANIZATION_DELETED"
            )
    if permission is not None and permission not in permissions:
        raise PermissionDenied(
            f"permission {permission!r} is required", metadata={"permission": permission}
        )
    return Access(organization_id, record.role, permissions, caller.is_platform)


def check_grantable(access: Access, permissions: frozenset[str] | tuple[str, ...]) -> None:
    """Non-owners may hand out only permissions they hold themselves, so a custom role
    with `members.add` or `roles.create` cannot be used to escalate privileges."""
    if access.acts_as_owner:
        return
    missing = sorted(set(permissions) - access.permissions)
    if missing:
        raise PermissionDenied(
            "you cannot grant permissions you do not hold: " + ", ".join(missing),
            metadata={"permission": missing[0]},
        )


@dataclass(frozen=True)
class Target:
    """The organization a request is about: named directly or by one of its invitations."""

    organization_id: str = ""
    invitation_id: str = ""


class AccessService:
    """Authorization for the API layer's own input checks (page tokens, field masks)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def require(self, caller: Caller, permission: str, target: Target) -> None:
        """Raises what authorize() would for this caller (NOT_FOUND, PERMISSION_DENIED),
        naming the organization directly or through one of its invitations."""
        with self._database.snapshot() as uow:
            organization_id = target.organization_id
            if target.invitation_id:
                invitation = (
                    uow.invitations.get(target.invitation_id, datetime.now(UTC))
                    if is_uuid(target.invitation_id)
                    else None
                )
                if invitation is None:
                    return  # no invitation: the input error stands
                organization_id = invitation.organization_id
            try:
                authorize(uow, caller, organization_id, permission, allow_deleted=True)
            except NotFound as error:
                if target.invitation_id:
                    raise NotFound("invitation not found", reason="INVITATION_NOT_FOUND") from error
                raise
