"""Audit: every mutation records one event in its own transaction; admins list them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from orgservice.domain.authorization import to_read
from orgservice.domain.models import AuditEvent, Call, Caller, Page, PageRequest
from orgservice.domain.permissions import AUDIT_LIST
from orgservice.domain.validation import search_text
from orgservice.service.authorization import authorize
from orgservice.service.ports import Database, UnitOfWork

LIST = to_read(AUDIT_LIST)


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
        self,
        call: Call,
        organization_id: str,
        page: Callable[[], PageRequest],
        *,
        action: str = "",
    ) -> Page[AuditEvent]:
        with self._database.snapshot(call.budget) as uow:
            authorize(uow, call.caller, organization_id, LIST)
            return uow.audit.find_page(organization_id, search_text("action", action), page())
