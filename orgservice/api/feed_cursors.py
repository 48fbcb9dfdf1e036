"""WatchEvents cursors: opaque and tamper-evident (sealed with the page token secret, for
this purpose only), bound to their organization ("" for the feed of every one)."""

from __future__ import annotations

from orgservice.api.page_tokens import Sealer
from orgservice.domain.errors import invalid
from orgservice.domain.models import FeedPosition

_FIELD = "start_cursor"


class FeedCursors:
    def __init__(self, secret: bytes) -> None:
        self._sealer = Sealer(secret, b"orgs.v1 feed cursor\0")

    def encode(self, position: FeedPosition) -> str:
        return self._sealer.seal({"o": position.organization_id, "s": position.seq})

    def decode(self, cursor: str, organization_id: str) -> FeedPosition | None:
        """The position `cursor` names in the feed of `organization_id` (canonical; ""
        for every organization); None for an empty cursor."""
        if not cursor:
            return None
        fields = self._sealer.open(cursor) or {}
        seq = fields.get("s")
        if not isinstance(seq, int):
            raise invalid(_FIELD, "is not a cursor this service issued")
        if fields.get("o") != organization_id:
            raise invalid(_FIELD, "belongs to another feed; resume with a cursor of this one")
        return FeedPosition(organization_id, seq)
