"""Authorization inside use cases: the caller's standing from the unit of work, the
decision from `domain.authorization.decide`."""

from __future__ import annotations

from collections.abc import Collection

from orgservice.domain.authorization import Access
from orgservice.domain.authorization import Requirement
from orgservice.domain.authorization import decide
from orgservice.domain.errors import PermissionDenied
from orgservice.domain.models import Caller
from orgservice.domain.validation import canonical_uuid
from orgservice.service.ports import UnitOfWork


def authorize(
    uow: UnitOfWork, caller: Caller, organization_id: str, requirement: Requirement
) -> Access:
    """The caller's access to the organization, or the error they must get. Runs before
    a use case looks at the rest of its input, so that only callers allowed to make a
    request learn what is wrong with it (AIP-211)."""
    canonical = canonical_uuid(organization_id)
    record = uow.access(canonical, caller.user_id, lock=requirement.lock) if canonical else None
    decision = decide(
        canonical or organization_id, record, requirement, is_platform=caller.is_platform
    )
    return decision.enforce()


def require_grantable(access: Access, permissions: Collection[str]) -> None:
    missing = access.missing(permissions)
    if missing:
        raise PermissionDenied(
            "you cannot grant permissions you do not hold: " + ", ".join(missing),
            metadata={"permission": missing[0]},
        )
