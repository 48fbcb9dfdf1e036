"""request_id handling for create RPCs (AIP-155): a repeat returns the first result."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from datetime import timedelta
from typing import Any

from orgservice.domain.errors import RequestIdReused
from orgservice.domain.models import Caller
from orgservice.domain.models import PriorRequest
from orgservice.service.ports import UnitOfWork

RETENTION = timedelta(hours=24)


def earlier_result(
    uow: UnitOfWork,
    caller: Caller,
    request_id: str,
    *,
    operation: str,
    request: Mapping[str, Any],
    resource_id: str,
    now: datetime,
) -> str | None:
    """Claims `request_id` (normalized, possibly empty) for a create of `resource_id`,
    or returns the id of what the same caller's earlier request with it created.

    Called inside the create's transaction, before it writes anything: a concurrent
    duplicate waits on the claim and then finds the winner's record.
    """
    if not request_id:
        return None
    fingerprint = _fingerprint(operation, request)
    this = PriorRequest(operation, fingerprint, resource_id)
    prior = uow.idempotency.claim(caller.user_id, request_id, this, now, now - RETENTION)
    if prior is None:
        return None
    if (prior.operation, prior.request_hash) != (operation, fingerprint):
        raise RequestIdReused()
    return prior.resource_id


def _fingerprint(operation: str, request: Mapping[str, Any]) -> str:
    canonical = json.dumps({"op": operation, "request": request}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
