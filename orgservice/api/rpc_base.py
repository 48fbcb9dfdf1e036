"""What every group of RPCs shares: the services, paging, update masks.

An RPC method takes the request and the `Call` (caller and budget) and returns the
response; `api.dispatch` runs it. Input the API layer can only judge once the caller is
authorized (page tokens, update masks, durations) reaches the use case as a callable it
calls after authorizing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Protocol
from typing import TypeVar
from typing import cast

from google.protobuf.message import Message

from orgservice.api.feed_cursors import FeedCursors
from orgservice.api.feed_hub import FeedHub
from orgservice.api.page_tokens import PageTokens
from orgservice.api.page_tokens import page_size
from orgservice.api.page_tokens import request_binding
from orgservice.domain.identity_memo import IdentityMemo
from orgservice.domain.models import Call
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.service.registry import Services

T = TypeVar("T")
R = TypeVar("R", bound=Message)


class _ListRequest(Protocol):
    """The paging fields every List request has (AIP-158)."""

    page_size: int
    page_token: str


@dataclass(frozen=True)
class Feed:
    """What the change feed RPCs need besides the use cases."""

    cursors: FeedCursors
    hub: FeedHub


class RpcBase:
    def __init__(self, services: Services, page_tokens: PageTokens, feed: Feed) -> None:
        self._services = services
        self._page_tokens = page_tokens
        self._feed = feed
        # Protobuf encodings of what the read cache serves again (organizations, pages of
        # members): converting a page of 50 members cost about 170 µs of a 460 µs
        # ListMembers, merging its encoding about 10.
        self._encodings: IdentityMemo[bytes] = IdentityMemo()

    def _page(self, request: Message, call: Call) -> Callable[[], PageRequest]:
        """The page a List request asks for (page_size and page_token validated)."""
        listing = cast(_ListRequest, request)

        def parse() -> PageRequest:
            # The binding copies the request: only a token needs it.
            token = listing.page_token
            binding = request_binding(request, call.caller.user_id) if token else None
            return PageRequest(
                limit=page_size(listing.page_size), after=self._page_tokens.decode(token, binding)
            )

        return parse

    def _listed(
        self,
        response: type[R],
        request: Message,
        call: Call,
        page: Page[Any],
        *,
        cached: bool = False,
        **items: Callable[[Any, Any], None],
    ) -> R:
        """A List response: `items` names its repeated field and the converter that fills
        one element from an item of `page`; next_page_token and total_size follow from
        the page (the token is bound to the caller, so it is made for every call).
        `cached`: the page may come from the read cache, so its items are encoded once."""
        [(field, fill)] = items.items()
        token = ""
        if page.next_cursor is not None:
            binding = request_binding(request, call.caller.user_id)
            token = self._page_tokens.encode(page.next_cursor, binding)

        def fill_items(target: R) -> R:
            add = getattr(target, field).add
            for item in page.items:
                fill(add(), item)
            return target

        listed = response(next_page_token=token, total_size=page.total_size)
        if not cached:
            return fill_items(listed)
        kind = f"{response.DESCRIPTOR.full_name}.{field}"
        encoded = self._encodings.of(page, kind, lambda: fill_items(response()).SerializeToString())
        listed.MergeFromString(encoded)
        return listed


def answers_from_memory(method: T) -> T:
    """Marks an RPC that the read cache can often answer: it is first tried on the event
    loop without any I/O, and only run as database work when that is not enough."""
    setattr(method, "memory_first", True)  # noqa: B010
    return method


def ungated(method: T) -> T:
    """Marks a mutation that waits on something besides the database (VerifyDomain asks
    DNS): it must not hold the organization's in-process gate, which would queue every
    other change of the organization behind that wait. It takes the row lock itself,
    briefly, like any mutation."""
    setattr(method, "ungated", True)  # noqa: B010
    return method
