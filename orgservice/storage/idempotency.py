"""Idempotency records: which resource a caller's request_id created, for 24 hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from orgservice.storage.database import flush_unique
from orgservice.storage.tables import IdempotencyKeyRow


@dataclass(frozen=True)
class PriorRequest:
    operation: str
    request_hash: str
    resource_id: str


class IdempotencyRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def find(self, user_id: str, request_id: str, not_before: datetime) -> PriorRequest | None:
        row = self._session.get(IdempotencyKeyRow, (user_id, request_id))
        if row is None or row.create_time < not_before:
            return None
        return PriorRequest(row.operation, row.request_hash, row.resource_id)

    def claim(
        self,
        *,
        user_id: str,
        request_id: str,
        operation: str,
        request_hash: str,
        resource_id: str,
        now: datetime,
        not_before: datetime,
    ) -> bool:
        """Records the request; False when a concurrent request claimed it first."""
        self._session.execute(
            delete(IdempotencyKeyRow).where(
                IdempotencyKeyRow.user_id == user_id,
                IdempotencyKeyRow.request_id == request_id,
                IdempotencyKeyRow.create_time < not_before,
            )
        )
        row = IdempotencyKeyRow(
            user_id=user_id,
            request_id=request_id,
            operation=operation,
            request_hash=request_hash,
            resource_id=resource_id,
            create_time=now,
        )
        return flush_unique(self._session, lambda: self._session.add(row))
