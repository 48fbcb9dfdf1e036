"""The audit log: one event per mutation, written in the mutation's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from orgservice.domain.validation import new_id
from orgservice.storage.tables import AuditEventRow


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def record(
        self,
        *,
        organization_id: str,
        actor_user_id: str,
        action: str,
        target_type: str,
        target_id: str,
        now: datetime,
        details: Mapping[str, str] | None = None,
    ) -> None:
        self._session.add(
            AuditEventRow(
                organization_id=organization_id,
                id=new_id(),
                actor_user_id=actor_user_id,
                action=action,
                target_type=target_type,
                target_id=target_id,
                details=dict(details or {}),
                create_time=now,
            )
        )
