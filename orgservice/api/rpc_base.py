"""What every group of RPCs shares: the services, the caller, page tokens."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

import grpc
from google.protobuf.message import Message

from orgservice.api.interceptors import current_identity, note_user
from orgservice.api.page_tokens import PageTokens, page_size, request_binding
from orgservice.domain.errors import InvalidArgument
from orgservice.domain.models import Caller, Cursor, PageRequest
from orgservice.service.access import Target
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


RpcT = TypeVar("RpcT", bound=RpcBase)
RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")
Handler = Callable[[RpcT, RequestT, grpc.ServicerContext], ResponseT]
TargetOf = Callable[[Any], Target]


def _organization(request: Any) -> Target:
    return Target(organization_id=request.organization_id)


def authorized_input(
    permission: str, target: TargetOf = _organization
) -> Callable[[Handler[RpcT, RequestT, ResponseT]], Handler[RpcT, RequestT, ResponseT]]:
    """Marks an organization-scoped RPC: if its input turns out invalid, callers who
    may not make the request get NOT_FOUND / PERMISSION_DENIED instead of the input
    error. `target` names the organization (an id, or a lookup in the database)."""

    def decorate(method: Handler[RpcT, RequestT, ResponseT]) -> Handler[RpcT, RequestT, ResponseT]:
        @functools.wraps(method)
        def handler(self: RpcT, request: RequestT, context: grpc.ServicerContext) -> ResponseT:
            try:
                return method(self, request, context)
            except InvalidArgument:
                # Only on the error path: the caller must first be allowed to ask.
                target_of_request = target(request)
                if target_of_request.organization_id or target_of_request.invitation_id:
                    self._services.access.require(self._caller(), permission, target_of_request)
                raise

        return handler

    return decorate
