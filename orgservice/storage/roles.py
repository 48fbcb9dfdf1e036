"""Roles: the built-in ones, stored as data with every organization, and custom ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from orgservice.domain.errors import RoleExists
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.models import Role
from orgservice.storage.paging import Pager
from orgservice.storage.rows import AnyRow
from orgservice.storage.rows import from_row
from orgservice.storage.sql import Repository
from orgservice.storage.tables import roles

_ROLE = select(roles).where(
    roles.c.organization_id == bindparam("organization_id"), roles.c.name == bindparam("name")
)
_PAGES = Pager(
    select(roles).where(roles.c.organization_id == bindparam("organization_id")),
    create_time=roles.c.create_time,
    id_column=roles.c.name,
)


class RoleRepository(Repository):
    def add(
        self,
        organization_id: str,
        name: str,
        description: str,
        permissions: Sequence[str],
        now: datetime,
    ) -> Role:
        """Raises RoleExists. The caller holds the organization row lock, so only a role
        committed earlier can clash."""
        if self.get(organization_id, name) is not None:
            raise RoleExists(name)
        values = role_values(
            organization_id, name, description, permissions, built_in=False, now=now
        )
        try:
            self._sql.execute(insert(roles), values)
        except IntegrityError as error:
            raise RoleExists(name) from error
        return Role(organization_id, name, description, tuple(permissions), False)

    def get(self, organization_id: str, name: str) -> Role | None:
        row = self._sql.execute(_ROLE, {"organization_id": organization_id, "name": name}).first()
        return _to_role(row) if row else None

    def find_page(self, organization_id: str, page: PageRequest) -> Page[Role]:
        return _PAGES.fetch(self._sql, page, {"organization_id": organization_id}, _to_role)

    def update(
        self,
        organization_id: str,
        name: str,
        *,
        description: str | None,
        permissions: Sequence[str] | None,
        now: datetime,
    ) -> Role:
        values: dict[str, object] = {"update_time": now}
        if description is not None:
            values["description"] = description
        if permissions is not None:
            values["permissions"] = list(permissions)
        self._sql.execute(
            update(roles)
            .where(roles.c.organization_id == organization_id, roles.c.name == name)
            .values(**values)
        )
        role = self.get(organization_id, name)
        assert role is not None, "updated under the organization row lock"
        return role

    def delete(self, organization_id: str, name: str) -> None:
        self._sql.execute(
            delete(roles).where(roles.c.organization_id == organization_id, roles.c.name == name)
        )


def role_values(
    organization_id: str,
    name: str,
    description: str,
    permissions: Sequence[str],
    *,
    built_in: bool,
    now: datetime,
) -> dict[str, object]:
    return {
        "organization_id": organization_id,
        "name": name,
        "description": description,
        "permissions": list(permissions),
        "built_in": built_in,
        "create_time": now,
        "update_time": now,
    }


def _to_role(row: AnyRow) -> Role:
    return from_row(Role, row, permissions=tuple(row._mapping["permissions"]))
