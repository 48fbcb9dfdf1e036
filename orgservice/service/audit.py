"""Audit: every mutation records one event in its own transaction; admins list them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Concatenate
from typing import ParamSpec

from orgservice.domain.authorization import to_read
from orgservice.domain.models import AuditEvent
from orgservice.domain.models import Call
from orgservice.domain.models import Caller
from orgservice.domain.models import Deferred
from orgservice.domain.models import FeedPosition
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.permissions import AUDIT_LIST
from orgservice.domain.validation import new_id
from orgservice.domain.validation import search_text
from orgservice.service.authorization import authorize
from orgservice.service.ports import UnitOfWork
from orgservice.service.use_cases import UseCases

LIST = to_read(AUDIT_LIST)
P = ParamSpec("P")


def event(
    caller: Caller,
    organization_id: str,
    action: str,
    now: datetime,
    *,
    target_type: str,
    target_id: str,
    **details: str,
) -> AuditEvent:
    """An event of the caller's; `details` must never hold secrets."""
    return AuditEvent(
        id=new_id(),
        organization_id=organization_id,
        actor_user_id=caller.user_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
        create_time=now,
    )


def _recorder(build: Callable[P, AuditEvent]) -> Callable[Concatenate[UnitOfWork, P], None]:
    def record(uow: UnitOfWork, /, *args: P.args, **kwargs: P.kwargs) -> None:
        uow.audit.record(build(*args, **kwargs))

    return record


# record(uow, caller, organization_id, action, now, ...): adds `event(...)` to the caller's
# transaction.
record = _recorder(event)


class AuditService(UseCases):
    def list(
        self, call: Call, organization_id: str, page: Deferred[PageRequest], *, action: str = ""
    ) -> tuple[Page[AuditEvent], FeedPosition]:
        """The page, and where a WatchEvents stream that follows it starts: after the
        newest event listed."""
        with self._database.snapshot(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, LIST).organization_id
            action = search_text("action", action)
            request = page()
            found = uow.audit.find_page(organization_id, action, request)
            head = 0
            if not found.items:
                # Then after the newest event now; listing again after reading that
                # number lists anything committed meanwhile, or the watch has it.
                head = uow.feed.heads([organization_id]).get(organization_id, 0)
                found = uow.audit.find_page(organization_id, action, request)
            newest = max((event.seq for event in found.items), default=head)
            return found, FeedPosition(organization_id, newest)
