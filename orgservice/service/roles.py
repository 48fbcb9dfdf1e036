"""Role use cases: built-in roles are fixed; custom roles hold a subset of permissions."""

from __future__ import annotations

from collections.abc import Sequence

from orgservice.domain.errors import FailedPrecondition, NotFound, Violations
from orgservice.domain.models import Caller, Page, PageRequest, Role
from orgservice.domain.permissions import (
    CUSTOM_ROLE_PERMISSIONS,
    ROLES_CREATE,
    ROLES_DELETE,
    ROLES_LIST,
    ROLES_UPDATE,
    sorted_permissions,
)
from orgservice.domain.validation import check_description, check_slug
from orgservice.service import audit
from orgservice.service.access import authorize, check_grantable
from orgservice.service.clock import Clock, system_clock
from orgservice.service.idempotency import create_once
from orgservice.storage.unit_of_work import Database, UnitOfWork


def _checked_permissions(
    violations: Violations, field: str, permissions: Sequence[str]
) -> list[str]:
    for index, permission in enumerate(permissions):
        if permission not in CUSTOM_ROLE_PERMISSIONS:
            violations.add(
                f"{field}[{index}]",
                f"{permission!r} is not a permission a custom role can hold",
            )
    return sorted_permissions(permissions)


def _custom_role(uow: UnitOfWork, organization_id: str, name: str) -> Role:
    role = uow.roles.get(organization_id, name)
    if role is None:
        raise NotFound("role not found", reason="ROLE_NOT_FOUND")
    if role.built_in:
        raise FailedPrecondition(
            f"the built-in role {name!r} cannot be changed or deleted", reason="BUILT_IN_ROLE"
        )
    return role


class RoleService:
    def __init__(self, database: Database, clock: Clock = system_clock) -> None:
        self._database = database
        self._clock = clock

    def list(self, caller: Caller, organization_id: str, page: PageRequest) -> Page[Role]:
        with self._database.snapshot() as uow:
            authorize(uow, caller, organization_id, ROLES_LIST, allow_deleted=True)
            return uow.roles.find_page(organization_id, page)

    def create(
        self,
        caller: Caller,
        organization_id: str,
        *,
        name: str,
        description: str,
        permissions: Sequence[str],
        request_id: str = "",
    ) -> Role:
        violations = Violations()
        check_slug(violations, "name", name)
        check_description(violations, "description", description)
        granted = _checked_permissions(violations, "permissions", permissions)
        violations.raise_if_any()

        def create(uow: UnitOfWork, _new_id: str) -> Role:
            access = authorize(uow, caller, organization_id, ROLES_CREATE, lock=True)
            check_grantable(access, tuple(granted))
            now = self._clock()
            role = uow.roles.add(organization_id, name, description, granted, now)
            audit.record(
                uow,
                caller,
                organization_id,
                "role.created",
                now,
                target_type="role",
                target_id=name,
                permissions=",".join(granted),
            )
            return role

        def replay(uow: UnitOfWork, role_name: str) -> Role:
            authorize(uow, caller, organization_id, ROLES_LIST, allow_deleted=True)
            role = uow.roles.get(organization_id, role_name)
            if role is None:
                raise NotFound("role not found", reason="ROLE_NOT_FOUND")
            return role

        return create_once(
            self._database,
            self._clock,
            caller,
            request_id=request_id,
            operation="CreateRole",
            request={
                "organization_id": organization_id,
                "name": name,
                "description": description,
                "permissions": granted,
            },
            create=create,
            replay=replay,
            resource_id=name,
        )

    def update(
        self,
        caller: Caller,
        organization_id: str,
        name: str,
        *,
        description: str | None,
        permissions: Sequence[str] | None,
    ) -> Role:
        violations = Violations()
        if description is not None:
            check_description(violations, "role.description", description)
        granted = (
            None
            if permissions is None
            else _checked_permissions(violations, "role.permissions", permissions)
        )
        violations.raise_if_any()
        with self._database.transaction() as uow:
            access = authorize(uow, caller, organization_id, ROLES_UPDATE, lock=True)
            current = _custom_role(uow, organization_id, name)
            # Changing a role's grants is granting: the caller must hold what it held
            # before (to take it away) and what it holds after.
            check_grantable(access, current.permissions + tuple(granted or ()))
            now = self._clock()
            role = uow.roles.update(
                organization_id, name, description=description, permissions=granted, now=now
            )
            audit.record(
                uow,
                caller,
                organization_id,
                "role.updated",
                now,
                target_type="role",
                target_id=name,
                permissions=",".join(role.permissions),
            )
            uow.commit()
            return role

    def delete(self, caller: Caller, organization_id: str, name: str) -> None:
        with self._database.transaction() as uow:
            authorize(uow, caller, organization_id, ROLES_DELETE, lock=True)
            _custom_role(uow, organization_id, name)
            now = self._clock()
            holders = uow.memberships.count_with_role(
                organization_id, name
            ) + uow.invitations.count_pending_with_role(organization_id, name, now)
            if holders:
                raise FailedPrecondition(
                    f"the role is held by {holders} member(s) or pending invitation(s); "
                    "change or revoke those first",
                    reason="ROLE_IN_USE",
                )
            uow.roles.delete(organization_id, name)
            audit.record(
                uow,
                caller,
                organization_id,
                "role.deleted",
                now,
                target_type="role",
                target_id=name,
            )
            uow.commit()
