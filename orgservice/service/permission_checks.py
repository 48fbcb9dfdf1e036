"""CheckPermission, the hot path other services call: one indexed query per check."""

from __future__ import annotations

from dataclasses import dataclass

from orgservice.domain.errors import PermissionDenied, invalid
from orgservice.domain.models import Caller, OrganizationState
from orgservice.domain.permissions import ALL_PERMISSIONS, ORGANIZATIONS_UNDELETE
from orgservice.domain.validation import is_uuid
from orgservice.service.access import organization_not_found
from orgservice.storage.memberships import AccessRecord
from orgservice.storage.unit_of_work import Database


@dataclass(frozen=True)
class Decision:
    allowed: bool
    role: str  # empty for non-members


class PermissionCheckService:
    def __init__(self, database: Database) -> None:
        self._database = database

    def check(
        self,
        caller: Caller,
        organization_id: str,
        permission: str,
        *,
        user_id: str = "",
        workspace_id: str = "",
    ) -> Decision:
        """Platform callers may ask about anyone and never get NOT_FOUND: an unknown
        organization or user is simply not allowed. Others ask about themselves, and
        organizations they are not in do not exist for them."""
        subject = user_id or caller.user_id
        if subject != caller.user_id and not caller.is_platform:
            raise PermissionDenied("only platform callers may check another user's permissions")
        with self._database.snapshot() as uow:
            record = (
                uow.memberships.access(organization_id, subject)
                if is_uuid(organization_id) and is_uuid(subject)
                else None
            )
            if not caller.is_platform and not _visible(record):
                raise organization_not_found()
            if permission not in ALL_PERMISSIONS:
                raise invalid("permission", f"unknown permission {permission!r}")
            if record is None or record.state is OrganizationState.DELETED:
                return Decision(False, (record.role or "") if record else "")
            # A platform caller asking about itself acts as an owner everywhere.
            acts_as_platform = caller.is_platform and subject == caller.user_id
            allowed = acts_as_platform or permission in record.permissions
            if allowed and workspace_id:
                allowed = is_uuid(workspace_id) and uow.workspaces.exists(
                    organization_id, workspace_id
                )
            return Decision(allowed, record.role or "")


def _visible(record: AccessRecord | None) -> bool:
    """Whether a member may know the organization exists (deleted: owners only)."""
    if record is None or record.role is None:
        return False
    return record.state is OrganizationState.ACTIVE or ORGANIZATIONS_UNDELETE in record.permissions
