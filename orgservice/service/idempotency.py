"""request_id handling for create RPCs (AIP-155): a repeat returns the first result."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from orgservice.domain.errors import InvalidArgument, invalid
from orgservice.domain.models import Caller
from orgservice.domain.validation import is_uuid, new_id
from orgservice.service.clock import Clock
from orgservice.storage.unit_of_work import Database, UnitOfWork

T = TypeVar("T")
RETENTION = timedelta(hours=24)


def create_once(
    database: Database,
    clock: Clock,
    caller: Caller,
    *,
    request_id: str,
    operation: str,
    request: Mapping[str, Any],
    create: Callable[[UnitOfWork, str], T],
    replay: Callable[[UnitOfWork, str], T],
    resource_id: str = "",
) -> T:
    """Runs `create(uow, new_resource_id)` in a transaction and commits it, unless the
    caller already made this request: then `replay(uow, resource_id)` returns the result.

    Resources named by the caller pass their own `resource_id` instead of a new UUID.
    The request_id is claimed before the resource is created, so a concurrent duplicate
    blocks on the claim, fails it, and retries to find the winner's record.
    """
    if request_id and not is_uuid(request_id):
        raise invalid("request_id", "must be a UUID")
    request_hash = _fingerprint(operation, request)
    for _attempt in range(3):
        with database.transaction() as uow:
            new_resource_id = resource_id or new_id()
            if request_id:
                now = clock()
                prior = uow.idempotency.find(caller.user_id, request_id, now - RETENTION)
                if prior is not None:
                    if (prior.operation, prior.request_hash) != (operation, request_hash):
                        raise InvalidArgument(
                            "request_id was already used for a different request",
                            reason="REQUEST_ID_REUSED",
                        )
                    return replay(uow, prior.resource_id)
                claimed = uow.idempotency.claim(
                    user_id=caller.user_id,
                    request_id=request_id,
                    operation=operation,
                    request_hash=request_hash,
                    resource_id=new_resource_id,
                    now=now,
                    not_before=now - RETENTION,
                )
                if not claimed:
                    continue
            result = create(uow, new_resource_id)
            uow.commit()
            return result
    raise RuntimeError("request_id claim kept failing without a visible winner")


def _fingerprint(operation: str, request: Mapping[str, Any]) -> str:
    canonical = json.dumps({"op": operation, "request": request}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
