"""Role use cases: built-in roles are fixed; custom roles hold a subset of permissions."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass

from orgservice.domain.authorization import to_change
from orgservice.domain.authorization import to_read
from orgservice.domain.errors import BuiltInRole
from orgservice.domain.errors import RoleInUse
from orgservice.domain.errors import RoleNotFound
from orgservice.domain.errors import Violations
from orgservice.domain.errors import quoted
from orgservice.domain.models import Call
from orgservice.domain.models import Deferred
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.models import Role
from orgservice.domain.permissions import CUSTOM_ROLE_PERMISSIONS
from orgservice.domain.permissions import ROLES_CREATE
from orgservice.domain.permissions import ROLES_DELETE
from orgservice.domain.permissions import ROLES_LIST
from orgservice.domain.permissions import ROLES_UPDATE
from orgservice.domain.permissions import sorted_permissions
from orgservice.domain.validation import check_count
from orgservice.domain.validation import check_description
from orgservice.domain.validation import check_slug
from orgservice.domain.validation import normalized_request_id
from orgservice.domain.validation import slug_to_look_up
from orgservice.service import audit
from orgservice.service.authorization import authorize
from orgservice.service.authorization import require_grantable
from orgservice.service.idempotency import earlier_result
from orgservice.service.ports import UnitOfWork
from orgservice.service.use_cases import UseCases

LIST = to_read(ROLES_LIST)
CREATE = to_change(ROLES_CREATE)
UPDATE = to_change(ROLES_UPDATE)
DELETE = to_change(ROLES_DELETE)
MAX_PERMISSIONS = 100


@dataclass(frozen=True)
class RoleChanges:
    """What an UpdateRole changes; None leaves a field as it is."""

    description: str | None = None
    permissions: Sequence[str] | None = None


def _checked_permissions(
    violations: Violations, field: str, permissions: Sequence[str]
) -> list[str]:
    check_count(violations, field, permissions, MAX_PERMISSIONS)
    for index, permission in enumerate(permissions[:MAX_PERMISSIONS]):
        if permission not in CUSTOM_ROLE_PERMISSIONS:
            violations.add(
                f"{field}[{index}]",
                f"{quoted(permission)} is not a permission a custom role can hold",
            )
    return sorted_permissions(permissions)


def _custom_role(uow: UnitOfWork, organization_id: str, name: str) -> Role:
    known = slug_to_look_up("name", name)
    role = uow.roles.get(organization_id, known) if known else None
    if role is None:
        raise RoleNotFound()
    if role.built_in:
        raise BuiltInRole(f"the built-in role {name!r} cannot be changed or deleted")
    return role


class RoleService(UseCases):
    def list(self, call: Call, organization_id: str, page: Deferred[PageRequest]) -> Page[Role]:
        with self._database.snapshot(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, LIST).organization_id
            return uow.roles.find_page(organization_id, page())

    def create(
        self,
        call: Call,
        organization_id: str,
        *,
        name: str,
        description: str,
        permissions: Sequence[str],
        request_id: str = "",
    ) -> Role:
        with self._database.transaction(call.budget) as uow:
            access = authorize(uow, call.caller, organization_id, CREATE)
            organization_id = access.organization_id
            violations = Violations()
            check_slug(violations, "name", name)
            check_description(violations, "description", description)
            granted = _checked_permissions(violations, "permissions", permissions)
            violations.raise_if_any()
            key = normalized_request_id(request_id)
            require_grantable(access, granted)
            now = self._clock()
            earlier = earlier_result(
                uow,
                call.caller,
                key,
                operation="CreateRole",
                request={
                    "organization_id": organization_id,
                    "name": name,
                    "description": description,
                    "permissions": granted,
                },
                resource_id=name,
                now=now,
            )
            if earlier is not None:
                role = uow.roles.get(organization_id, earlier)
                if role is None:
                    raise RoleNotFound()
                return role
            role = uow.roles.add(organization_id, name, description, granted, now)
            audit.record(
                uow,
                call.caller,
                organization_id,
                "role.created",
                now,
                target_type="role",
                target_id=name,
                permissions=",".join(granted),
            )
            uow.commit()
            return role

    def update(
        self, call: Call, organization_id: str, name: str, changes: Callable[[], RoleChanges]
    ) -> Role:
        with self._database.transaction(call.budget) as uow:
            access = authorize(uow, call.caller, organization_id, UPDATE)
            organization_id = access.organization_id
            wanted = changes()
            violations = Violations()
            if wanted.description is not None:
                check_description(violations, "role.description", wanted.description)
            granted = (
                None
                if wanted.permissions is None
                else _checked_permissions(violations, "role.permissions", wanted.permissions)
            )
            violations.raise_if_any()
            current = _custom_role(uow, organization_id, name)
            # Changing a role's grants is granting: the caller must hold what it held
            # before (to take it away) and what it holds after.
            require_grantable(access, current.permissions + tuple(granted or ()))
            now = self._clock()
            role = uow.roles.update(
                organization_id, name, description=wanted.description, permissions=granted, now=now
            )
            audit.record(
                uow,
                call.caller,
                organization_id,
                "role.updated",
                now,
                target_type="role",
                target_id=name,
                permissions=",".join(role.permissions),
            )
            uow.commit()
            return role

    def delete(self, call: Call, organization_id: str, name: str) -> None:
        with self._database.transaction(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, DELETE).organization_id
            _custom_role(uow, organization_id, name)
            now = self._clock()
            holders = uow.memberships.count_with_role(
                organization_id, name
            ) + uow.invitations.count_pending_with_role(organization_id, name, now)
            if holders:
                raise RoleInUse(
                    f"the role is held by {holders} member(s) or pending invitation(s); "
                    "change or revoke those first"
                )
            organization = uow.organizations.get(organization_id)
            if organization is not None and organization.settings.auto_join_role == name:
                raise RoleInUse(
                    "the role is the organization's settings.auto_join_role; change that first"
                )
            uow.roles.delete(organization_id, name)
            audit.record(
                uow,
                call.caller,
                organization_id,
                "role.deleted",
                now,
                target_type="role",
                target_id=name,
            )
            uow.commit()
