"""CheckPermission, the hot path other services call: answered from the read cache
when it can be, in one indexed query otherwise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orgservice.domain.authorization import Requirement
from orgservice.domain.authorization import Verdict
from orgservice.domain.authorization import decide
from orgservice.domain.errors import OrganizationNotFound
from orgservice.domain.errors import PermissionDenied
from orgservice.domain.errors import invalid
from orgservice.domain.errors import quoted
from orgservice.domain.models import Call
from orgservice.domain.permissions import ALL_PERMISSIONS
from orgservice.domain.validation import canonical_uuid
from orgservice.service.use_cases import UseCases


@dataclass(frozen=True)
class PermissionCheck:
    allowed: bool
    role: str  # empty for non-members


class PermissionCheckService(UseCases):
    def check(
        self,
        call: Call,
        organization_id: str,
        permission: str,
        *,
        user_id: str = "",
        workspace_id: str = "",
        fully_consistent: bool = False,
        validate: Callable[[], None] = lambda: None,
    ) -> PermissionCheck:
        """Platform callers may ask about anyone and never get NOT_FOUND: an unknown
        organization or user is simply not allowed. Others ask about themselves, and
        organizations they are not in do not exist for them. `fully_consistent` reads
        the database now instead of the read cache. `validate` checks the rest of the
        request once the caller may learn about the organization (AIP-211)."""
        caller = call.caller
        subject = (canonical_uuid(user_id) or "") if user_id else caller.user_id
        if subject != caller.user_id and not caller.is_platform:
            raise PermissionDenied("only platform callers may check another user's permissions")
        organization = canonical_uuid(organization_id)
        with self._database.snapshot(call.budget, cached=not fully_consistent) as uow:
            record = uow.access(organization, subject) if organization and subject else None
            # A platform caller asking about itself acts as an owner everywhere.
            decision = decide(
                organization or organization_id,
                record,
                Requirement(permission),
                is_platform=caller.is_platform and subject == caller.user_id,
            )
            if decision.verdict is Verdict.NOT_FOUND and not caller.is_platform:
                raise OrganizationNotFound()
            validate()
            if permission not in ALL_PERMISSIONS:
                raise invalid("permission", f"unknown permission {quoted(permission)}")
            allowed = decision.allowed
            if allowed and workspace_id:
                workspace = canonical_uuid(workspace_id)
                allowed = workspace is not None and uow.workspaces.exists(
                    decision.access.organization_id, workspace
                )
            return PermissionCheck(allowed, (record.role or "") if record else "")
