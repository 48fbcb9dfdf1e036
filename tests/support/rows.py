"""Rows the storage tests insert directly, bypassing the use cases."""

from __future__ import annotations

import uuid
from datetime import UTC
from datetime import datetime
from typing import Any


def user_row(tag: str) -> dict[str, Any]:
    """A new `users` row, its subject starting with `tag`."""
    now = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "subject": f"{tag}-{uuid.uuid4().hex}",
        "username": "",
        "email": "",
        "email_verified": False,
        "display_name": "",
        "create_time": now,
        "update_time": now,
    }
