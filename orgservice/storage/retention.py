"""Retention: what the purge job deletes.

- organizations whose `purge_time` has passed (30 days after a soft delete), with every
  row they own, their slug and their verified domain names, which become free again;
- idempotency records older than 24 hours (they no longer replay anything);
- invitations 30 days after they ended (accepted, declined, revoked or expired).

Work goes in batches, each its own transaction, so one purge never holds locks for long.
On PostgreSQL each batch first takes a transaction-level advisory lock without waiting:
when another replica is purging, this one leaves the work to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select

from orgservice.domain.budget import Budget
from orgservice.domain.models import InvitationState
from orgservice.storage.sql import Sql
from orgservice.storage.tables import idempotency_keys
from orgservice.storage.tables import invitations
from orgservice.storage.tables import organization_slugs
from orgservice.storage.tables import organizations
from orgservice.storage.tables import verified_domains
from orgservice.storage.unit_of_work import SqlDatabase

IDEMPOTENCY_RETENTION = timedelta(hours=24)
ENDED_INVITATION_RETENTION = timedelta(days=30)
BATCH_SIZE = 500
BATCH_SECONDS = 60.0
# Arbitrary constant naming the purge job's advisory lock (distinct from migrations').
PURGE_LOCK_KEY = 0x6F7267707572
# Organizations due for purge, a batch, skipping those another replica is purging.
DUE_FOR_PURGE = (
    select(organizations.c.id)
    .where(organizations.c.purge_time <= bindparam("now"))
    .limit(BATCH_SIZE)
    .with_for_update(skip_locked=True)
)


@dataclass
class PurgeReport:
    organizations: int = 0
    idempotency_keys: int = 0
    invitations: int = 0
    # Another replica was purging: this one stopped (each batch takes the lock anew, so
    # it may have deleted something first).
    skipped: bool = False

    def __str__(self) -> str:
        deleted = self.organizations + self.invitations + self.idempotency_keys
        if self.skipped and not deleted:
            return "another replica is purging; nothing deleted here"
        counts = (
            f"deleted {self.organizations} organization(s), {self.invitations} ended "
            f"invitation(s), {self.idempotency_keys} idempotency record(s)"
        )
        return f"{counts}; another replica is purging the rest" if self.skipped else counts


def purge(database: SqlDatabase, now: datetime) -> PurgeReport:
    report = PurgeReport()
    steps = (
        ("organizations", _purge_organizations),
        ("invitations", _purge_invitations),
        ("idempotency_keys", _purge_idempotency_keys),
    )
    for field, step in steps:
        while True:
            with database.transaction(Budget(BATCH_SECONDS)) as uow:
                sql = uow.sql
                if not _lock(sql):
                    report.skipped = True
                    return report
                deleted = step(sql, now)
                uow.commit()
            setattr(report, field, getattr(report, field) + deleted)
            if deleted < BATCH_SIZE:
                break
    return report


def _lock(sql: Sql) -> bool:
    if not sql.postgresql:
        return True  # SQLite writers hold the database's write lock
    locked: bool = sql.execute(select(func.pg_try_advisory_xact_lock(PURGE_LOCK_KEY))).scalar_one()
    return locked


def _purge_organizations(sql: Sql, now: datetime) -> int:
    ids = list(sql.execute(DUE_FOR_PURGE, {"now": now}).scalars())
    if ids:
        # Every tenant table cascades from organizations; the global registries do not.
        sql.execute(delete(organization_slugs).where(organization_slugs.c.organization_id.in_(ids)))
        sql.execute(delete(verified_domains).where(verified_domains.c.organization_id.in_(ids)))
        sql.execute(delete(organizations).where(organizations.c.id.in_(ids)))
    return len(ids)


def _purge_invitations(sql: Sql, now: datetime) -> int:
    cutoff = now - ENDED_INVITATION_RETENTION
    ended = or_(
        and_(
            invitations.c.state != InvitationState.PENDING.value, invitations.c.update_time < cutoff
        ),
        invitations.c.expire_time < cutoff,
    )
    keys = sql.execute(
        select(invitations.c.organization_id, invitations.c.id).where(ended).limit(BATCH_SIZE)
    ).all()
    for organization_id, invitation_id in keys:
        sql.execute(
            delete(invitations).where(
                invitations.c.organization_id == organization_id, invitations.c.id == invitation_id
            )
        )
    return len(keys)


def _purge_idempotency_keys(sql: Sql, now: datetime) -> int:
    keys = sql.execute(
        select(idempotency_keys.c.user_id, idempotency_keys.c.request_id)
        .where(idempotency_keys.c.create_time < now - IDEMPOTENCY_RETENTION)
        .limit(BATCH_SIZE)
    ).all()
    for user_id, request_id in keys:
        sql.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.user_id == user_id, idempotency_keys.c.request_id == request_id
            )
        )
    return len(keys)
