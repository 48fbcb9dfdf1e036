"""Roles: the built-in ones, stored as data with every organization, and custom ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orgservice.domain.errors import AlreadyExists
from orgservice.domain.models import Cursor, Page, PageRequest, Role
from orgservice.domain.permissions import BUILT_IN_ROLES
from orgservice.storage.database import flush_unique
from orgservice.storage.paging import AnyRow, fetch_page
from orgservice.storage.tables import RoleRow


class RoleRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add_built_ins(self, organization_id: str, now: datetime) -> None:
        # Lists order roles by creation time: a microsecond apart, the built-ins come
        # first and in the table's order (owner, admin, developer, viewer).
        self._session.add_all(
            _row(
                organization_id,
                role.name,
                role.description,
                role.permissions,
                True,
                now + timedelta(microseconds=index),
            )
            for index, role in enumerate(BUILT_IN_ROLES)
        )
        # Memberships reference roles; without relationship() mappings the session does
        # not know to insert roles first, so write them now.
        self._session.flush()

    def add(
        self,
        organization_id: str,
        name: str,
        description: str,
        permissions: Sequence[str],
        now: datetime,
    ) -> Role:
        row = _row(organization_id, name, description, permissions, False, now)
        if not flush_unique(self._session, lambda: self._session.add(row)):
            raise AlreadyExists(f"a role named {name!r} already exists", reason="ROLE_EXISTS")
        return _to_role(row)

    def get(self, organization_id: str, name: str) -> Role | None:
        row = self._session.get(RoleRow, (organization_id, name))
        return _to_role(row) if row else None

    def find_page(self, organization_id: str, page: PageRequest) -> Page[Role]:
        rows, total, next_cursor = fetch_page(
            self._session,
            select(RoleRow).where(RoleRow.organization_id == organization_id),
            create_time=RoleRow.create_time,
            id_column=RoleRow.name,
            page=page,
            cursor_of=_cursor_of,
        )
        return Page([_to_role(row[0]) for row in rows], total, next_cursor)

    def update(
        self,
        organization_id: str,
        name: str,
        *,
        description: str | None,
        permissions: Sequence[str] | None,
        now: datetime,
    ) -> Role:
        row = self._session.get_one(RoleRow, (organization_id, name))
        if description is not None:
            row.description = description
        if permissions is not None:
            row.permissions = list(permissions)
        row.update_time = now
        return _to_role(row)

    def delete(self, organization_id: str, name: str) -> None:
        self._session.execute(
            delete(RoleRow).where(RoleRow.organization_id == organization_id, RoleRow.name == name)
        )


def _row(
    organization_id: str,
    name: str,
    description: str,
    permissions: Sequence[str],
    built_in: bool,
    now: datetime,
) -> RoleRow:
    return RoleRow(
        organization_id=organization_id,
        name=name,
        description=description,
        permissions=list(permissions),
        built_in=built_in,
        create_time=now,
        update_time=now,
    )


def _cursor_of(row: AnyRow) -> Cursor:
    role: RoleRow = row[0]
    return Cursor(role.create_time, role.name)


def _to_role(row: RoleRow) -> Role:
    return Role(
        organization_id=row.organization_id,
        name=row.name,
        description=row.description,
        permissions=tuple(row.permissions),
        built_in=row.built_in,
    )
