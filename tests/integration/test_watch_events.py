"""WatchEvents against an in-process server on SQLite and PostgreSQL (`api`): replay
after a cursor, live events, resuming, cursors that must be refused, access, the feed
of every organization, and the stream limits and shutdown (servers of their own).

Two processes on one database, notifications and polling: tests/e2e/test_change_feed.py.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc
from sqlalchemy import text

from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import settings_for
from tests.conftest import start_api
from tests.support.feed import WAIT_SECONDS
from tests.support.feed import Watcher
from tests.support.feed import audit_log
from tests.support.feed import commit_order

Code = grpc.StatusCode
# New events reach a watcher within this (API.md, "Change feed").
DELIVERY_SECONDS = 1.0


def watch(api: Api, client: Client, organization_id: str = "", start_cursor: str = "") -> Watcher:
    return Watcher(api.channel, client.token, organization_id, start_cursor)


def watching(api: Api, client: Client, organization_id: str = "") -> Watcher:
    """A watcher from now, once the server has opened its stream (no earlier event
    can reach it then)."""
    before = api.server.feed_hub.opened
    watcher = watch(api, client, organization_id)
    deadline = time.monotonic() + WAIT_SECONDS
    while api.server.feed_hub.opened <= before:
        assert time.monotonic() < deadline, "the stream did not open"
        time.sleep(0.01)
    return watcher


def watch_cursor(client: Client, organization_id: str) -> str:
    reply = client.ListAuditEvents(rpc.ListAuditEventsRequest(organization_id=organization_id))
    return str(reply.watch_cursor)


def add_workspace(client: Client, organization_id: str, name: str = "") -> None:
    client.CreateWorkspace(
        rpc.CreateWorkspaceRequest(
            organization_id=organization_id, name=name or f"W {uuid.uuid4().hex[:8]}"
        )
    )


def add_workspaces(client: Client, organization_id: str, count: int) -> None:
    """`count` changes, one event each."""
    for _ in range(count):
        add_workspace(client, organization_id)


def refusal(
    api: Api, client: Client, organization_id: str, start_cursor: str = ""
) -> tuple[Code, str]:
    with watch(api, client, organization_id, start_cursor) as watcher:
        ended = watcher.wait_for_end()
        assert watcher.received == []
        return ended.code, ended.reason


class Org:
    def __init__(self, api: Api) -> None:
        self.owner = api.client()
        self.id = self.owner.create_org().id

    def member(self, api: Api, role: str) -> tuple[Client, str]:
        client = api.client()
        user_id = client.user_id
        self.owner.AddMember(
            rpc.AddMemberRequest(organization_id=self.id, user_id=user_id, role=role)
        )
        return client, user_id


@pytest.fixture
def org(api: Api) -> Org:
    return Org(api)


def test_list_then_watch_misses_nothing_and_repeats_nothing(api: Api, org: Org) -> None:
    add_workspace(org.owner, org.id)
    cursor = watch_cursor(org.owner, org.id)
    add_workspace(org.owner, org.id)  # between the list and the watch
    with watch(api, org.owner, org.id, cursor) as watcher:
        watcher.wait_for(1)
        add_workspaces(org.owner, org.id, 3)
        watcher.wait_for(4)
        time.sleep(0.3)  # nothing more may come
        log = audit_log(org.owner, org.id)
        order = commit_order(api.engine, org.id)
        assert watcher.ids() == order[-4:]
        assert [r.event for r in watcher.received] == [log[i] for i in order[-4:]]


def test_an_empty_start_cursor_starts_from_now(api: Api, org: Org) -> None:
    add_workspace(org.owner, org.id)
    with watching(api, org.owner, org.id) as watcher:
        time.sleep(0.3)
        assert watcher.received == []
        add_workspace(org.owner, org.id, "Now")
        (first,) = watcher.wait_for(1)
        assert first.event.action == "workspace.created"
        assert first.event.details["slug"] == "now"


def test_new_events_arrive_within_a_second(api: Api, org: Org) -> None:
    with watching(api, org.owner, org.id) as watcher:
        latencies = []
        for n in range(1, 6):
            add_workspace(org.owner, org.id)
            committed = time.monotonic()
            latencies.append(watcher.wait_for(n)[-1].at - committed)
        assert max(latencies) < DELIVERY_SECONDS, latencies


def test_resuming_from_the_last_cursor_continues_exactly_after_it(api: Api, org: Org) -> None:
    start = watch_cursor(org.owner, org.id)
    add_workspaces(org.owner, org.id, 3)
    with watch(api, org.owner, org.id, start) as first:
        seen = first.wait_for(3)
    add_workspaces(org.owner, org.id, 2)  # while nobody watches
    with watch(api, org.owner, org.id, seen[-1].cursor) as resumed:
        resumed.wait_for(2)
        add_workspace(org.owner, org.id)
        resumed.wait_for(3)
        time.sleep(0.3)
        ids = [r.event.id for r in seen] + resumed.ids()
    order = commit_order(api.engine, org.id)
    assert ids == order[-6:]


def test_a_cursor_of_the_middle_replays_the_rest(api: Api, org: Org) -> None:
    start = watch_cursor(org.owner, org.id)
    add_workspaces(org.owner, org.id, 4)
    with watch(api, org.owner, org.id, start) as watcher:
        received = watcher.wait_for(4)
    with watch(api, org.owner, org.id, received[1].cursor) as replay:
        replay.wait_for(2)
        time.sleep(0.2)
        assert replay.ids() == [r.event.id for r in received[2:]]


@pytest.mark.parametrize(
    "cursor", ["garbage", "eyJvIjoiIiwicyI6MX0.AAAAAAAAAAAAAAAAAAAAAA", "a.b.c", "é"]
)
def test_a_cursor_the_service_did_not_issue_is_invalid(api: Api, org: Org, cursor: str) -> None:
    assert refusal(api, org.owner, org.id, cursor) == (Code.INVALID_ARGUMENT, "INVALID_ARGUMENT")


def test_a_tampered_cursor_is_invalid(api: Api, org: Org) -> None:
    payload, _, mac = watch_cursor(org.owner, org.id).partition(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    assert refusal(api, org.owner, org.id, f"{flipped}.{mac}")[0] == Code.INVALID_ARGUMENT


def test_a_cursor_of_another_feed_is_invalid(api: Api, org: Org) -> None:
    other = org.owner.create_org().id
    foreign = watch_cursor(org.owner, other)
    assert refusal(api, org.owner, org.id, foreign)[0] == Code.INVALID_ARGUMENT
    platform = api.platform()
    assert refusal(api, platform, "", foreign)[0] == Code.INVALID_ARGUMENT
    add_workspace(org.owner, org.id)
    page_token = org.owner.ListAuditEvents(
        rpc.ListAuditEventsRequest(organization_id=org.id, page_size=1)
    ).next_page_token
    assert page_token
    assert refusal(api, org.owner, org.id, page_token)[0] == Code.INVALID_ARGUMENT


def test_a_cursor_before_purged_events_is_out_of_range(api: Api, org: Org) -> None:
    start = watch_cursor(org.owner, org.id)
    add_workspaces(org.owner, org.id, 3)
    first_new = commit_order(api.engine, org.id)[-3]
    with api.engine.begin() as connection:  # as a retention job would
        connection.execute(
            text("DELETE FROM audit_events WHERE organization_id = :o AND id = :i"),
            {"o": org.id, "i": first_new},
        )
    assert refusal(api, org.owner, org.id, start) == (Code.OUT_OF_RANGE, "CURSOR_EXPIRED")


def test_watching_needs_audit_list(api: Api, org: Org) -> None:
    admin, _ = org.member(api, "admin")
    developer, _ = org.member(api, "developer")
    with watching(api, admin, org.id) as watcher:
        add_workspace(org.owner, org.id)
        assert watcher.wait_for(1)
    assert refusal(api, developer, org.id)[0] == Code.PERMISSION_DENIED
    assert refusal(api, api.client(), org.id) == (Code.NOT_FOUND, "ORGANIZATION_NOT_FOUND")
    assert refusal(api, api.client(), str(uuid.uuid4()))[0] == Code.NOT_FOUND


def test_a_watcher_who_is_removed_is_ended(api: Api, org: Org) -> None:
    admin, admin_id = org.member(api, "admin")
    with watching(api, admin, org.id) as watcher:
        add_workspace(org.owner, org.id)
        watcher.wait_for(1)
        org.owner.RemoveMember(rpc.RemoveMemberRequest(organization_id=org.id, user_id=admin_id))
        ended = watcher.wait_for_end(timeout=DELIVERY_SECONDS + 5)
    assert (ended.code, ended.reason) == (Code.NOT_FOUND, "ORGANIZATION_NOT_FOUND")
    assert [r.event.action for r in watcher.received] == ["workspace.created"]


def test_a_watcher_whose_role_loses_audit_list_is_ended(api: Api, org: Org) -> None:
    admin, admin_id = org.member(api, "admin")
    with watching(api, admin, org.id) as watcher:
        org.owner.UpdateMember(
            rpc.UpdateMemberRequest(organization_id=org.id, user_id=admin_id, role="viewer")
        )
        assert watcher.wait_for_end().code == Code.PERMISSION_DENIED


def test_every_organization_is_for_platform_callers(api: Api, org: Org) -> None:
    assert refusal(api, org.owner, "")[0] == Code.PERMISSION_DENIED
    with watching(api, api.platform()) as watcher:
        second = org.owner.create_org().id
        add_workspace(org.owner, org.id)
        add_workspace(org.owner, second)
        add_workspace(org.owner, org.id)
        received = watcher.wait_for(4)
    by_org: dict[str, list[str]] = {}
    for item in received:
        by_org.setdefault(item.event.organization_id, []).append(item.event.id)
    engine = api.engine
    assert by_org[org.id] == commit_order(engine, org.id)[-2:]
    assert by_org[second] == commit_order(engine, second)


def test_the_feed_of_every_organization_resumes_after_its_cursor(api: Api, org: Org) -> None:
    platform = api.platform()
    with watching(api, platform) as watcher:
        add_workspace(org.owner, org.id)
        (first,) = watcher.wait_for(1)
    add_workspace(org.owner, org.id, "While away")
    with watch(api, platform, "", first.cursor) as resumed:
        (again,) = resumed.wait_for(1)
        assert again.event.details["slug"] == "while-away"


def test_a_stream_its_client_cancels_ends_cleanly(
    api: Api, org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    # The server may close a cancelled stream's generator later, from another task: its
    # cleanup must still log the call as cancelled and leave no error behind.
    def closed() -> bool:
        return any(
            "WatchEvents code=CANCELLED" in record.getMessage()
            and f"user_id={org.owner.user_id}" in record.getMessage()
            for record in caplog.records
            if record.name == "orgservice.access"
        )

    with caplog.at_level(logging.INFO):
        with watching(api, org.owner, org.id):
            pass
        deadline = time.monotonic() + WAIT_SECONDS
        while not closed():
            assert time.monotonic() < deadline, "the cancelled stream was not logged"
            time.sleep(0.01)
        gc.collect()  # asyncio reports an exception nobody retrieved when the task is freed
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- servers of their own: limits and shutdown ---------------------------------------


@pytest.fixture
def small_api(database_url: str, dev_key_file: Path) -> Iterator[Api]:
    yield from start_api(settings_for(database_url, dev_key_file, threads=4, max_streams=3))


def test_streams_count_against_max_streams_and_never_starve_unary_calls(small_api: Api) -> None:
    owner = small_api.client()
    organization_id = owner.create_org().id
    watchers = [watching(small_api, owner, organization_id) for _ in range(3)]
    try:
        refused = watch(small_api, owner, organization_id).wait_for_end()
        assert (refused.code, refused.reason) == (Code.RESOURCE_EXHAUSTED, "TOO_MANY_REQUESTS")
        started = time.monotonic()
        add_workspaces(owner, organization_id, 10)
        assert time.monotonic() - started < 5
        for watcher in watchers:
            assert len(watcher.wait_for(10)) == 10
    finally:
        for watcher in watchers:
            watcher.cancel()


def test_shutdown_ends_streams_with_unavailable(database_url: str, dev_key_file: Path) -> None:
    servers = start_api(settings_for(database_url, dev_key_file))
    api = next(servers)
    try:
        owner = api.client()
        organization_id = owner.create_org().id
        watcher = watching(api, owner, organization_id)
        started = time.monotonic()
        api.server.stop_background(grace=5)
        ended = watcher.wait_for_end(timeout=5)
        assert (ended.code, ended.reason) == (Code.UNAVAILABLE, "SHUTTING_DOWN")
        assert time.monotonic() - started < 2  # streams do not wait for the grace period
    finally:
        servers.close()
