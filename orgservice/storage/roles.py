"""Roles: the built-in ones, stored as data with every organization, and custom ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from orgservice.domain.permissions import BUILT_IN_ROLES
from orgservice.storage.tables import RoleRow


class RoleRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add_built_ins(self, organization_id: str, now: datetime) -> None:
        self._session.add_all(
            RoleRow(
                organization_id=organization_id,
                name=role.name,
                description=role.description,
                permissions=list(role.permissions),
                built_in=True,
                create_time=now,
                update_time=now,
            )
            for role in BUILT_IN_ROLES
        )
        # Memberships reference roles; without relationship() mappings the session does
        # not know to insert roles first, so write them now.
        self._session.flush()
