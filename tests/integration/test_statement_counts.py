"""How many SQL statements the server runs per call, on SQLite and PostgreSQL (`api`).

Counted with a `before_cursor_execute` listener on the server's engine (the server runs
in-process). Tests run one at a time, so everything the engine executes between the start
and the end of a call belongs to that call, except the health monitor's periodic ping,
which runs on its own thread ("db-health") and is left out.

- ListMembers costs the same whatever the page size or the number of members (no N+1),
  and nothing when the read cache holds the page.
- CheckPermission and GetOrganization, the hot paths, read nothing from the database when
  the read cache knows the answer, and make one statement when it does not (or when the
  caller asks for a fully consistent answer).
- GetCurrentUser looks for an organization to auto-join with one statement, and only
  for callers with a verified email.
- A create is one statement on PostgreSQL, a transaction of its own; on both backends a
  derived slug that is taken costs nothing more (one statement claims the first free
  candidate).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from functools import partial
from typing import Any
from typing import TypeVar

import pytest
from orgs.v1 import organization_service_pb2 as rpc
from sqlalchemy import Engine
from sqlalchemy import event

from tests.conftest import Api
from tests.conftest import Client
from tests.support.domains import new_domain

T = TypeVar("T")
HEALTH_THREAD = "db-health"


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
    api: Api, counter: StatementCounter, large_org: Org, small_org: Org
) -> None:
    owner = large_org.owner
    list_members(owner, large_org.id, 1)  # the caller is known from here on
    list_members(small_org.owner, small_org.id, 1)
    second_page = list_members(owner, large_org.id, 1).next_page_token
    assert second_page
    api.server.cache.invalidate_all()
    calls = {  # name: (call, members on the page)
        "60 members, page_size 1": (lambda: list_members(owner, large_org.id, 1), 1),
        "60 members, page_size 50": (lambda: list_members(owner, large_org.id, 50), 50),
        "60 members, page_size 1000": (lambda: list_members(owner, large_org.id, 1000), 60),
        "60 members, second page": (lambda: list_members(owner, large_org.id, 1, second_page), 1),
        "2 members, page_size 50": (lambda: list_members(small_org.owner, small_org.id, 50), 2),
    }
    counts = {}
    for name, (call, size) in calls.items():
        reply, statements = counter.run(call)
        assert len(reply.members) == size, name
        counts[name] = len(statements)
        _, again = counter.run(call)
        assert again == [], f"{name}: the cached page was read again"
        api.server.cache.invalidate_all()  # the next page is read, whatever came before
    assert len(set(counts.values())) == 1, counts
    assert counts["60 members, page_size 1"] > 0  # the listener does see the server


def check(
    client: Client,
    org_id: str,
    permission: str,
    user_id: str = "",
    consistency: int = rpc.CONSISTENCY_UNSPECIFIED,
) -> Any:
    return client.CheckPermission(
        rpc.CheckPermissionRequest(
            organization_id=org_id, permission=permission, user_id=user_id, consistency=consistency
        )
    )


def check_calls(api: Api, org: Org, consistency: int) -> dict[str, tuple[Callable[[], Any], bool]]:
    """The checks other services make, by whom, with the expected answer."""
    viewer, viewer_id = org.members[0], org.member_ids[0]
    platform = api.platform()
    platform.GetCurrentUser(rpc.GetCurrentUserRequest())  # provisioned, identity cached
    return {
        "member, held": (lambda: check(viewer, org.id, "organizations.get", "", consistency), True),
        "member, not held": (
            lambda: check(viewer, org.id, "organizations.delete", "", consistency),
            False,
        ),
        "member, other": (
            lambda: check(viewer, org.id, "workspaces.create", "", consistency),
            False,
        ),
        "platform names member": (
            lambda: check(platform, org.id, "members.list", viewer_id, consistency),
            True,
        ),
        "platform names another member": (
            lambda: check(platform, org.id, "organizations.delete", org.member_ids[1], consistency),
            False,
        ),
    }


def statements_per_call(
    counter: StatementCounter, calls: dict[str, tuple[Callable[[], Any], bool]]
) -> dict[str, int]:
    counts = {}
    for name, (call, allowed) in calls.items():
        reply, statements = counter.run(call)
        assert reply.allowed is allowed, name
        counts[name] = len(statements)
    return counts


def test_cached_check_permission_reads_no_database(
    api: Api, counter: StatementCounter, large_org: Org
) -> None:
    calls = check_calls(api, large_org, rpc.CONSISTENCY_UNSPECIFIED)
    for call, _allowed in calls.values():
        call()  # fills the read cache
    counts = statements_per_call(counter, calls)
    assert set(counts.values()) == {0}, counts


def test_fully_consistent_check_permission_is_one_statement(
    api: Api, counter: StatementCounter, large_org: Org
) -> None:
    calls = check_calls(api, large_org, rpc.CONSISTENCY_FULLY_CONSISTENT)
    counts = statements_per_call(counter, calls)
    assert set(counts.values()) == {1}, counts
    platform, stranger = api.platform(), str(uuid.uuid4())
    platform.GetCurrentUser(rpc.GetCurrentUserRequest())  # provisioned
    reply, statements = counter.run(
        lambda: check(
            platform, large_org.id, "roles.list", stranger, rpc.CONSISTENCY_FULLY_CONSISTENT
        )
    )
    assert (reply.allowed, reply.role) == (False, "")
    assert len(statements) <= 1, statements


def test_get_organization_is_one_statement_then_none(
    api: Api, counter: StatementCounter, small_org: Org
) -> None:
    newcomer = api.client()
    newcomer_id = newcomer.user_id
    small_org.owner.AddMember(
        rpc.AddMemberRequest(organization_id=small_org.id, user_id=newcomer_id, role="viewer")
    )
    request = rpc.GetOrganizationRequest(organization_id=small_org.id)
    first, uncached = counter.run(lambda: newcomer.GetOrganization(request))
    second, cached = counter.run(lambda: newcomer.GetOrganization(request))
    assert first.organization.member_count == second.organization.member_count == 3
    assert (len(uncached), len(cached)) == (1, 0), uncached


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


def test_get_current_user_with_nothing_to_join_costs_one_lookup(
    api: Api, counter: StatementCounter
) -> None:
    """Auto-join's price on GetCurrentUser when there is nothing to join: no statement
    without a verified email, one (the verified-domain registry by primary key) with one."""
    unverified = api.client(email=f"someone@{new_domain()}", email_verified=False)
    verified = api.client(email=f"someone@{new_domain()}", email_verified=True)
    me = rpc.GetCurrentUserRequest()
    for client in (unverified, verified):
        client.GetCurrentUser(me)  # provisioned, identity cached
    _, plain = counter.run(lambda: unverified.GetCurrentUser(me))
    _, with_lookup = counter.run(lambda: verified.GetCurrentUser(me))
    assert len(with_lookup) == len(plain) + 1, with_lookup
    assert [s for s in with_lookup if "verified_domains" in s] == [with_lookup[0]]


def test_a_create_whose_slug_is_taken_costs_no_more_round_trips(
    api: Api, counter: StatementCounter
) -> None:
    """A derived slug that is taken costs no second attempt (the suffixed candidates
    travel with the first); never another read of the owner's profile, which on
    PostgreSQL the insert statement locks."""
    owner = api.client()
    owner.create_org()  # provisioned, identity cached
    name = f"Taken {uuid.uuid4().hex[:8]}"

    def create() -> Any:
        return owner.CreateOrganization(rpc.CreateOrganizationRequest(name=name))

    first, fresh = counter.run(create)
    second, taken = counter.run(create)
    assert second.organization.slug.startswith(first.organization.slug + "-")
    postgresql = counter.engine.dialect.name == "postgresql"
    assert len(taken) == len(fresh), (fresh, taken)
    if postgresql:  # the insert statement alone: its own transaction, profile lock included
        assert len(fresh) == 1, fresh
