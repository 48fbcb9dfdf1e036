"""How many SQL statements the server runs per call, on SQLite and PostgreSQL (`api`).

Counted with a `before_cursor_execute` listener on the server's engine (the server runs
in-process). Tests run one at a time, so everything the engine executes between the start
and the end of a call belongs to that call, except the health monitor's periodic ping,
which runs on its own thread ("db-health") and is left out.

- ListMembers costs the same whatever the page size or the number of members (no N+1).
- CheckPermission, the hot path, costs at most two statements once the caller is known
  (SQLite's BEGIN included), whatever the permission and whoever is asked about.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import pytest
from orgs.v1 import organization_service_pb2 as rpc
from sqlalchemy import Engine, event

from tests.conftest import Api, Client

T = TypeVar("T")
HEALTH_THREAD = "db-health"
MAX_CHECK_STATEMENTS = 2


class StatementCounter:
    """Records the statements the server's engine executes (health pings excluded)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.current_thread().name == HEALTH_THREAD:
            return
        with self._lock:
            self.statements.append(statement)

    def run(self, call: Callable[[], T]) -> tuple[T, list[str]]:
        """The call's result and the statements executed while it ran."""
        with self._lock:
            self.statements.clear()
        result = call()
        with self._lock:
            return result, list(self.statements)


@pytest.fixture
def counter(api: Api) -> Iterator[StatementCounter]:
    engine = api.server.database.engine
    counter = StatementCounter(engine)
    event.listen(engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", counter)


class Org:
    """An organization with `size` members: the owner, then viewers."""

    def __init__(self, api: Api, size: int) -> None:
        self.owner = api.client()
        self.id = self.owner.create_org().id
        self.members = [api.client() for _ in range(size - 1)]
        self.member_ids = [member.user_id for member in self.members]
        for user_id in self.member_ids:
            self.owner.AddMember(
                rpc.AddMemberRequest(organization_id=self.id, user_id=user_id, role="viewer")
            )


@pytest.fixture(scope="module")
def large_org(api: Api) -> Org:
    return Org(api, 60)


@pytest.fixture(scope="module")
def small_org(api: Api) -> Org:
    return Org(api, 2)


def list_members(client: Client, org_id: str, page_size: int, token: str = "") -> Any:
    return client.ListMembers(
        rpc.ListMembersRequest(organization_id=org_id, page_size=page_size, page_token=token)
    )


def test_list_members_costs_the_same_for_any_page_size_or_size(
    counter: StatementCounter, large_org: Org, small_org: Org
) -> None:
    owner = large_org.owner
    list_members(owner, large_org.id, 1)  # the caller is known from here on
    list_members(small_org.owner, small_org.id, 1)
    second_page = list_members(owner, large_org.id, 1).next_page_token
    assert second_page
    calls = {  # name: (call, members on the page)
        "60 members, page_size 1": (lambda: list_members(owner, large_org.id, 1), 1),
        "60 members, page_size 50": (lambda: list_members(owner, large_org.id, 50), 50),
        "60 members, page_size 1000": (lambda: list_members(owner, large_org.id, 1000), 60),
        "60 members, second page": (
            lambda: list_members(owner, large_org.id, 1, second_page),
            1,
        ),
        "2 members, page_size 50": (
            lambda: list_members(small_org.owner, small_org.id, 50),
            2,
        ),
    }
    counts = {}
    for name, (call, size) in calls.items():
        reply, statements = counter.run(call)
        assert len(reply.members) == size, name
        counts[name] = len(statements)
    assert len(set(counts.values())) == 1, counts
    assert counts["60 members, page_size 1"] > 0  # the listener does see the server


def check(client: Client, org_id: str, permission: str, user_id: str = "") -> Any:
    return client.CheckPermission(
        rpc.CheckPermissionRequest(organization_id=org_id, permission=permission, user_id=user_id)
    )


def test_check_permission_costs_at_most_two_statements(
    api: Api, counter: StatementCounter, large_org: Org
) -> None:
    viewer, viewer_id = large_org.members[0], large_org.member_ids[0]
    platform = api.platform()
    platform.GetCurrentUser(rpc.GetCurrentUserRequest())  # provisioned, identity cached
    check(viewer, large_org.id, "organizations.get")  # warm-up
    org = large_org.id
    calls: dict[str, tuple[Callable[[], Any], bool]] = {
        "member, held": (lambda: check(viewer, org, "organizations.get"), True),
        "member, not held": (lambda: check(viewer, org, "organizations.delete"), False),
        "member, other": (lambda: check(viewer, org, "workspaces.create"), False),
        "platform names member": (
            lambda: check(platform, org, "members.list", viewer_id),
            True,
        ),
        "platform names another member": (
            lambda: check(platform, org, "organizations.delete", large_org.member_ids[1]),
            False,
        ),
    }
    counts = {}
    for name, (call, allowed) in calls.items():
        reply, statements = counter.run(call)
        assert reply.allowed is allowed, name
        counts[name] = len(statements)
    assert len(set(counts.values())) == 1, counts
    assert 0 < counts["member, held"] <= MAX_CHECK_STATEMENTS, counts
    stranger = str(uuid.uuid4())
    reply, statements = counter.run(lambda: check(platform, org, "roles.list", stranger))
    assert (reply.allowed, reply.role) == (False, "")
    assert len(statements) <= MAX_CHECK_STATEMENTS, statements


def test_list_audit_events_costs_the_same_for_any_page_size(
    counter: StatementCounter, large_org: Org
) -> None:
    owner = large_org.owner

    def audit(page_size: int) -> Any:
        request = rpc.ListAuditEventsRequest(organization_id=large_org.id, page_size=page_size)
        return owner.ListAuditEvents(request)

    audit(1)  # warm-up
    counts = {}
    for page_size in (1, 50, 1000):
        reply, statements = counter.run(partial(audit, page_size))
        assert reply.total_size == 60  # organization.created + 59 member.added
        assert len(reply.events) == min(page_size, 60)
        counts[page_size] = len(statements)
    assert len(set(counts.values())) == 1, counts
