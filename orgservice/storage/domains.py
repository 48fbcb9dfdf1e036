"""Domains an organization claims, and the registry of verified names.

`domains` is a tenant table: many organizations may claim one name. `verified_domains`
is global: its primary key lets one organization at a time hold a name VERIFIED, and
an insert there decides concurrent verifications.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from orgservice.domain.models import Domain
from orgservice.domain.models import DomainState
from orgservice.storage.rows import AnyRow
from orgservice.storage.rows import from_row
from orgservice.storage.sql import Repository
from orgservice.storage.sql import insert_if_absent
from orgservice.storage.tables import domains
from orgservice.storage.tables import verified_domains

_KEY = (domains.c.organization_id == bindparam("organization_id")) & (
    domains.c.name == bindparam("name")
)
_DOMAIN = select(domains).where(_KEY)
_HOLDER = select(verified_domains.c.organization_id).where(
    verified_domains.c.name == bindparam("name")
)


class DomainRepository(Repository):
    def add(self, organization_id: str, name: str, token: str, now: datetime) -> bool:
        """Adds a PENDING domain; False when the organization holds the name already."""
        return insert_if_absent(
            self._sql,
            domains,
            {
                "organization_id": organization_id,
                "name": name,
                "state": DomainState.PENDING.value,
                "token": token,
                "create_time": now,
                "verify_time": None,
            },
        )

    def count(self, organization_id: str) -> int:
        count: int = self._sql.execute(
            select(func.count()).where(domains.c.organization_id == organization_id)
        ).scalar_one()
        return count

    def get(self, organization_id: str, name: str) -> Domain | None:
        row = self._sql.execute(_DOMAIN, {"organization_id": organization_id, "name": name}).first()
        return _to_domain(row) if row else None

    def of_organization(self, organization_id: str) -> list[Domain]:
        """Oldest first."""
        rows = self._sql.execute(
            select(domains)
            .where(domains.c.organization_id == organization_id)
            .order_by(domains.c.create_time, domains.c.name)
        ).all()
        return [_to_domain(row) for row in rows]

    def holder(self, name: str) -> str | None:
        """The organization holding `name` VERIFIED, if any."""
        found: str | None = self._sql.execute(_HOLDER, {"name": name}).scalar()
        return found

    def verify(self, organization_id: str, name: str, now: datetime) -> bool:
        """Marks the domain VERIFIED if no other organization holds the name so; False
        when one does (a concurrent verification waits for the first to end)."""
        if not insert_if_absent(
            self._sql, verified_domains, {"name": name, "organization_id": organization_id}
        ):
            return False
        self._sql.execute(
            update(domains)
            .where(domains.c.organization_id == organization_id, domains.c.name == name)
            .values(state=DomainState.VERIFIED.value, verify_time=now)
        )
        return True

    def delete(self, organization_id: str, name: str) -> None:
        """Deletes the domain and, if it held the name VERIFIED, frees the name."""
        self._sql.execute(
            delete(domains).where(
                domains.c.organization_id == organization_id, domains.c.name == name
            )
        )
        self._sql.execute(
            delete(verified_domains).where(
                verified_domains.c.name == name,
                verified_domains.c.organization_id == organization_id,
            )
        )


def _to_domain(row: AnyRow) -> Domain:
    return from_row(Domain, row, state=DomainState(row._mapping["state"]))
