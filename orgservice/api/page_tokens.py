"""Opaque, tamper-evident keyset page tokens bound to the request that produced them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

from google.protobuf.message import Message

from orgservice.domain.errors import invalid
from orgservice.domain.models import Cursor

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_MAC_BYTES = 16


def page_size(requested: int) -> int:
    if requested < 0:
        raise invalid("page_size", "must not be negative")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


class Sealer:
    """Opaque, tamper-evident tokens: `payload.mac`, the MAC keyed with the secret and
    `purpose`, so a token made for one purpose never opens for another."""

    def __init__(self, secret: bytes, purpose: bytes = b"") -> None:
        self._secret = secret
        self._purpose = purpose

    def seal(self, fields: dict[str, object]) -> str:
        payload = json.dumps(fields, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def open(self, token: str) -> dict[str, object] | None:
        """The sealed fields, or None when this service did not seal the token."""
        payload_text, _, mac_text = token.partition(".")
        try:
            payload = _unb64(payload_text)
            mac = _unb64(mac_text)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            fields = json.loads(payload)
        except ValueError:  # signed, but by a release that wrote another format
            return None
        return fields if isinstance(fields, dict) else None

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, self._purpose + payload, hashlib.sha256).digest()[:_MAC_BYTES]


class PageTokens:
    """Encodes cursors as sealed tokens; `binding` names the caller and every request
    parameter except page_size and page_token, so a token only continues its own list."""

    def __init__(self, secret: bytes) -> None:
        self._sealer = Sealer(secret)

    def encode(self, cursor: Cursor | None, binding: object) -> str:
        if cursor is None:
            return ""
        return self._sealer.seal(
            {"t": cursor.create_time.isoformat(), "i": cursor.id, "b": _digest(binding)}
        )

    def decode(self, token: str, binding: object) -> Cursor | None:
        if not token:
            return None
        fields = self._sealer.open(token)
        if fields is None:
            raise _bad_token()
        # Sealed, but possibly by a release that wrote other fields.
        bound, cursor_id, time_text = fields.get("b"), fields.get("i"), fields.get("t")
        if not (
            isinstance(bound, str) and isinstance(cursor_id, str) and isinstance(time_text, str)
        ):
            raise _bad_token()
        try:
            create_time = datetime.fromisoformat(time_text)
        except ValueError as error:
            raise _bad_token() from error
        if create_time.tzinfo is None:
            raise _bad_token()
        if bound != _digest(binding):
            raise invalid(
                "page_token", "belongs to a different request; keep the other fields unchanged"
            )
        return Cursor(create_time=create_time, id=cursor_id)


def request_binding(request: Message, caller_id: str) -> tuple[str, str, bytes]:
    """What a page token is bound to: the caller, the RPC and every request field but
    the page size and token themselves."""
    scoped = type(request)()
    scoped.CopyFrom(request)
    scoped.ClearField("page_size")
    scoped.ClearField("page_token")
    return type(request).__name__, caller_id, scoped.SerializeToString(deterministic=True)


def _bad_token() -> Exception:
    return invalid("page_token", "is not a token this service issued")


def _digest(binding: object) -> str:
    return hashlib.sha256(repr(binding).encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
