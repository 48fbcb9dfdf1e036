"""Idempotency records: which resource a caller's request_id created, for 24 hours."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from orgservice.domain.models import PriorRequest
from orgservice.storage.sql import Repository
from orgservice.storage.tables import idempotency_keys

_KEY = (idempotency_keys.c.user_id == bindparam("user_id")) & (
    idempotency_keys.c.request_id == bindparam("request_id")
)
_FIND = select(
    idempotency_keys.c.operation, idempotency_keys.c.request_hash, idempotency_keys.c.resource_id
).where(_KEY)


class IdempotencyRepository(Repository):
    def claim(
        self, user_id: str, request_id: str, request: PriorRequest, now: datetime, since: datetime
    ) -> PriorRequest | None:
        """Records what this request does (`request`), or returns what the same request_id
        did before (records older than `since` no longer count).

        A concurrent duplicate's insert waits for the first transaction: when it commits,
        the duplicate finds its record; when it rolls back, the duplicate claims it."""
        key = {"user_id": user_id, "request_id": request_id}
        dialect_insert = pg_insert if self._sql.postgresql else sqlite_insert
        statement = dialect_insert(idempotency_keys).values(
            operation=request.operation,
            request_hash=request.request_hash,
            resource_id=request.resource_id,
            create_time=now,
            **key,
        )
        # An expired record is replaced; a live one stays and is returned.
        claimed = self._sql.execute(
            statement.on_conflict_do_update(
                index_elements=[idempotency_keys.c.user_id, idempotency_keys.c.request_id],
                set_={
                    name: statement.excluded[name]
                    for name in ("operation", "request_hash", "resource_id", "create_time")
                },
                where=idempotency_keys.c.create_time < since,
            ).returning(idempotency_keys.c.request_id)
        ).first()
        if claimed is not None:
            return None
        row = self._sql.execute(_FIND, key).one()
        return PriorRequest(row[0], row[1], row[2])
