"""Page tokens (api/page_tokens.py): opaque, tamper-evident, bound to the request and the
caller; whatever a client sends as a token yields a cursor or INVALID_ARGUMENT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from orgs.v1 import organization_service_pb2 as rpc

from orgservice.api.page_tokens import DEFAULT_PAGE_SIZE
from orgservice.api.page_tokens import MAX_PAGE_SIZE
from orgservice.api.page_tokens import PageTokens
from orgservice.api.page_tokens import page_size
from orgservice.api.page_tokens import request_binding
from orgservice.domain.errors import InvalidArgument
from orgservice.domain.models import Cursor
from tests.unit.world import Cast
from tests.unit.world import World
from tests.unit.world import failure

SECRET = b"page-token-secret"
TOKENS = PageTokens(SECRET)
CURSOR = Cursor(datetime(2030, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC), "5b0f0b58-0c9b-4d0f")
BINDING = request_binding(rpc.ListMembersRequest(organization_id="org", role="viewer"), "alice")


def refused(token: str, binding: object = BINDING, tokens: PageTokens = TOKENS) -> str:
    with pytest.raises(InvalidArgument) as caught:
        tokens.decode(token, binding)
    assert [v.field for v in caught.value.violations] == ["page_token"]
    return caught.value.violations[0].description


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def payload_of(token: str) -> dict[str, object]:
    text = token.partition(".")[0]
    fields: dict[str, object] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return fields


ISSUED = payload_of(TOKENS.encode(CURSOR, BINDING))


def signed(payload: bytes) -> str:
    """A token with a valid MAC over any payload: what only the secret's holder makes."""
    mac = hmac.new(SECRET, payload, hashlib.sha256).digest()[:16]
    return f"{b64(payload)}.{b64(mac)}"


@pytest.mark.parametrize(
    "cursor",
    [
        CURSOR,
        Cursor(datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC), "a"),
        Cursor(datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5))), "ü.id"),
    ],
)
def test_a_token_continues_its_list(cursor: Cursor) -> None:
    token = TOKENS.encode(cursor, BINDING)
    assert token.isascii()
    assert TOKENS.decode(token, BINDING) == cursor


def test_no_cursor_no_token() -> None:
    assert TOKENS.encode(None, BINDING) == ""
    assert TOKENS.decode("", BINDING) is None


def test_a_token_is_bound_to_the_request_and_the_caller() -> None:
    token = TOKENS.encode(CURSOR, BINDING)
    others = [
        rpc.ListMembersRequest(organization_id="org", role="admin"),
        rpc.ListMembersRequest(organization_id="other", role="viewer"),
        rpc.ListWorkspacesRequest(organization_id="org"),
    ]
    for request in others:
        assert "different request" in refused(token, request_binding(request, "alice"))
    assert "different request" in refused(
        token, request_binding(rpc.ListMembersRequest(organization_id="org", role="viewer"), "bob")
    )


def test_page_size_and_token_are_not_part_of_the_binding() -> None:
    request = rpc.ListMembersRequest(organization_id="org", role="viewer", page_size=7)
    request.page_token = TOKENS.encode(CURSOR, BINDING)
    assert request_binding(request, "alice") == BINDING


def test_tampering_is_detected() -> None:
    token = TOKENS.encode(CURSOR, BINDING)
    payload, mac = token.split(".")
    forged = b64(json.dumps({**payload_of(token), "i": "someone-else"}).encode())
    assert "not a token this service issued" in refused(f"{forged}.{mac}")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    assert "not a token this service issued" in refused(f"{payload}.{flipped}")
    assert "not a token this service issued" in refused(token, tokens=PageTokens(b"other"))


@pytest.mark.parametrize(
    "token",
    [
        ".",
        "..",
        "a",
        "a.b.c",
        "====.====",
        "!!!.???",
        "ü.ö",
        "\x00",
        "x" * 100_000,
        "." + "A" * 22,
        TOKENS.encode(CURSOR, BINDING).split(".")[0],  # payload without its MAC
        ".".join(reversed(TOKENS.encode(CURSOR, BINDING).split("."))),
    ],
)
def test_garbage_is_invalid_argument(token: str) -> None:
    refused(token)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        json.dumps({**ISSUED, "t": None}).encode(),
        json.dumps({**ISSUED, "t": "yesterday"}).encode(),
        json.dumps({**ISSUED, "t": "2030-01-01T00:00:00"}).encode(),  # no offset
        json.dumps({**ISSUED, "i": 5}).encode(),
        json.dumps({"t": ISSUED["t"], "b": ISSUED["b"]}).encode(),
        json.dumps({"t": ISSUED["t"], "i": ISSUED["i"]}).encode(),
    ],
)
def test_a_signed_token_of_another_format_is_invalid_argument(payload: bytes) -> None:
    """Say a token of an older release, signed with the same secret."""
    assert "not a token this service issued" in refused(signed(payload))


def test_a_signed_token_of_this_format_is_accepted() -> None:
    assert TOKENS.decode(signed(json.dumps(ISSUED).encode()), BINDING) == CURSOR


@pytest.mark.parametrize(
    ("requested", "size"),
    [(0, DEFAULT_PAGE_SIZE), (1, 1), (MAX_PAGE_SIZE, MAX_PAGE_SIZE), (10**9, MAX_PAGE_SIZE)],
)
def test_page_sizes(requested: int, size: int) -> None:
    assert page_size(requested) == size


def test_a_negative_page_size_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_a_list_continues_only_for_its_caller(world: World, cast: Cast) -> None:
    request = rpc.ListMembersRequest(organization_id=cast.id, page_size=3)
    first = world.rpcs.ListMembers(request, cast.viewer)
    assert first.total_size == 4
    assert len(first.members) == 3
    request.page_token = first.next_page_token
    second = world.rpcs.ListMembers(request, cast.viewer)
    assert (len(second.members), second.next_page_token) == (1, "")
    listed = {m.user.id for m in [*first.members, *second.members]}
    assert len(listed) == 4
    assert failure(world.rpcs.ListMembers, request, cast.admin).reason == "INVALID_ARGUMENT"
    request.role = "viewer"
    assert failure(world.rpcs.ListMembers, request, cast.viewer).reason == "INVALID_ARGUMENT"
