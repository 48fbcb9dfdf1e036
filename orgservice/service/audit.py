"""Audit: every mutation records one event in its own transaction; admins list them."""

from __future__ import annotations

from datetime import datetime

from orgservice.domain.models import AuditEvent, Caller, Page, PageRequest
from orgservice.domain.permissions import AUDIT_LIST
from orgservice.service.access import authorize
from orgservice.storage.unit_of_work import Database, UnitOfWork


def record(
    uow: UnitOfWork,
    caller: Caller,
    organization_id: str,
    action: str,
    now: datetime,
    *,
    target_type: str,
    target_id: str,
    **details: str,
) -> None:
    """Adds an event to the caller's transaction; `details` must never hold secrets."""
    uow.audit.record(
        organization_id=organization_id,
        actor_user_id=caller.user_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        now=now,
        details=details,
    )


class AuditService:
    def __init__(self, database: Database) -> None:
        self._database = database

    def list(
        self, caller: Caller, organization_id: str, page: PageRequest, *, action: str = ""
    ) -> Page[AuditEvent]:
        with self._database.snapshot() as uow:
            authorize(uow, caller, organization_id, AUDIT_LIST, allow_deleted=True)
            return uow.audit.find_page(organization_id, action.strip(), page)
