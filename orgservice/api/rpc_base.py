"""What every group of RPCs shares: the services, the caller, page tokens."""

from __future__ import annotations

from typing import Protocol, cast

from google.protobuf.message import Message

from orgservice.api.interceptors import current_identity, note_user
from orgservice.api.page_tokens import PageTokens, page_size, request_binding
from orgservice.domain.models import Caller, Cursor, PageRequest
from orgservice.service.registry import Services


class _ListRequest(Protocol):
    """The paging fields every List request has (AIP-158)."""

    page_size: int
    page_token: str


class RpcBase:
    def __init__(self, services: Services, page_tokens: PageTokens) -> None:
        self._services = services
        self._page_tokens = page_tokens

    def _caller(self) -> Caller:
        caller = self._services.identities.caller_for(current_identity())
        note_user(caller.user_id)
        return caller

    def _page(self, request: Message, caller: Caller) -> PageRequest:
        """The page a List request asks for (page_size and page_token validated)."""
        listing = cast(_ListRequest, request)
        return PageRequest(
            limit=page_size(listing.page_size),
            after=self._page_tokens.decode(
                listing.page_token, request_binding(request, caller.user_id)
            ),
        )

    def _next_page_token(self, request: Message, caller: Caller, cursor: Cursor | None) -> str:
        return self._page_tokens.encode(cursor, request_binding(request, caller.user_id))
