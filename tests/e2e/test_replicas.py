"""Several replicas on one PostgreSQL database (OPERATIONS.md, API.md "Consistency of reads
and permission checks"): separate `orgservice serve` processes sharing the database and
ORGSERVICE_PAGE_TOKEN_SECRET, every call of a workload sent to a random one of them, as a
load balancer would.

What must hold across replicas: pages without gaps or duplicates, request_id replays,
the last-owner and invitation-accept races, one purge at a time, exact counters, caches
that converge within --authz-cache-seconds (much sooner with notifications), and fully
consistent permission checks that are never stale.
"""

from __future__ import annotations

import random
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from orgs.v1 import organization_service_pb2 as rpc
from sqlalchemy.engine import make_url

from orgservice import devkeys
from orgservice.storage.retention import PURGE_LOCK_KEY
from tests.conftest import Client
from tests.conftest import new_postgres_database
from tests.conftest import require_postgres_tests
from tests.e2e.conftest import ServiceProcess
from tests.e2e.conftest import wait_until
from tests.faults.conftest import Outcome
from tests.faults.conftest import attempt
from tests.faults.conftest import summary
from tests.support.pgbouncer import PgBouncer
from tests.support.pgbouncer import direct_url_for
from tests.support.races import run_together
from tests.support.rpc_outcomes import label

pytestmark = pytest.mark.postgres_only

Code = grpc.StatusCode
REPLICAS = 3
PURGE_INTERVAL_SECONDS = 1.0
CACHE_SECONDS = 5.0  # the default --authz-cache-seconds
NOTIFIED_LIMIT = 1.0  # with notifications, "well under a second"
POLLED_CACHE_SECONDS = 2.0  # the bound of the replicas without notifications (a short one)
BOUND_MARGIN = 0.5  # for polling and scheduling on a busy machine
CHECK = "organizations.get"


# -- replicas and their users ---------------------------------------------------------------


class User:
    """One user's token, with a client on every replica."""

    def __init__(self, subject: str, token: str, channels: list[grpc.Channel]) -> None:
        self.subject = subject
        self.clients = [Client(channel, token, subject) for channel in channels]

    def on(self, replica: int) -> Client:
        return self.clients[replica]

    def anywhere(self) -> Client:
        return random.choice(self.clients)

    @cached_property
    def user_id(self) -> str:
        """Provisions the user (its first call) on a random replica."""
        return self.anywhere().user_id


class Replicas:
    """Running replicas, a channel to each, and users calling them."""

    def __init__(self, services: list[ServiceProcess], key: Ed25519PrivateKey) -> None:
        self.services = services
        self._key = key
        self.channels = [grpc.insecure_channel(f"127.0.0.1:{s.port}") for s in services]

    def __len__(self) -> int:
        return len(self.services)

    def user(self, subject: str = "", **claims: Any) -> User:
        """A new user, or (given its subject) an existing one with a new token."""
        subject = subject or f"replica-user-{uuid.uuid4().hex[:10]}"
        return User(
            subject, devkeys.mint_token(self._key, subject=subject, **claims), self.channels
        )

    def platform(self) -> User:
        return self.user(scope="orgs:admin")

    def others(self, replica: int) -> list[int]:
        return [index for index in range(len(self)) if index != replica]

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


@contextmanager
def running_replicas(
    workdir: Path, database_url: str, count: int, *args: str
) -> Iterator[Replicas]:
    """`count` separate `orgservice serve` processes on one database, started together
    (migrations included), sharing a dev signing key and the page token secret."""
    key_file = workdir / "dev-key"
    key = devkeys.load_or_create(key_file)
    shared = {
        "ORGSERVICE_DEV_KEY_FILE": str(key_file),
        "ORGSERVICE_PAGE_TOKEN_SECRET": secrets.token_hex(32),
    }
    services = [
        ServiceProcess(
            workdir / f"replica-{index}", "--database-url", database_url, *args, env=shared
        )
        for index in range(count)
    ]
    replicas = Replicas(services, key)
    try:
        for service in services:
            service.start()
        for service in services:
            service.wait_until_serving()
        yield replicas
    finally:
        replicas.close()
        for service in services:
            service.close()


@pytest.fixture(scope="module")
def replica_database() -> Iterator[str]:
    """A new PostgreSQL database for this module (direct, not through PgBouncer)."""
    require_postgres_tests()
    with new_postgres_database() as url:
        yield direct_url_for(url)


@pytest.fixture(scope="module")
def replicas(replica_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    with running_replicas(
        tmp_path_factory.mktemp("replicas"),
        replica_database,
        REPLICAS,
        "--purge-interval-seconds",
        str(PURGE_INTERVAL_SECONDS),
    ) as running:
        yield running


def connect(database_url: str) -> psycopg.Connection[Any]:
    """A direct connection to the database, to check what the replicas stored."""
    libpq_url = make_url(database_url).set(drivername="postgresql")
    return psycopg.connect(libpq_url.render_as_string(hide_password=False), autocommit=True)


def attempts_together(calls: list[Callable[[], Any]]) -> list[Outcome]:
    """The calls run together; their outcomes in call order."""
    return run_together([partial(attempt, call) for call in calls])


def codes(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(label(o.code, o.reason) for o in outcomes)


# -- pages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """A list RPC to page through, and how to add an item to it."""

    name: str
    add: Callable[[Client], str]  # creates an item, returns its id
    page: Callable[[Client, str, int], tuple[list[str], str]]  # token, size -> ids, next token


def workspaces_of(owner: User) -> Listing:
    organization_id = owner.anywhere().create_org().id

    def add(client: Client) -> str:
        request = rpc.CreateWorkspaceRequest(organization_id=organization_id, name="Workspace")
        return str(client.CreateWorkspace(request).workspace.id)

    def page(client: Client, token: str, size: int) -> tuple[list[str], str]:
        request = rpc.ListWorkspacesRequest(
            organization_id=organization_id, page_size=size, page_token=token
        )
        reply = client.ListWorkspaces(request)
        return [w.id for w in reply.workspaces], reply.next_page_token

    return Listing("ListWorkspaces", add, page)


def organizations_of(owner: User) -> Listing:
    def add(client: Client) -> str:
        return str(client.create_org().id)

    def page(client: Client, token: str, size: int) -> tuple[list[str], str]:
        request = rpc.ListOrganizationsRequest(page_size=size, page_token=token)
        reply = client.ListOrganizations(request)
        return [o.id for o in reply.organizations], reply.next_page_token

    return Listing("ListOrganizations", add, page)


PAGE_SIZE = 5


@pytest.mark.parametrize("listing_of", [workspaces_of, organizations_of], ids=lambda f: f.__name__)
def test_pages_from_different_replicas_have_no_gaps_or_duplicates(
    replicas: Replicas, listing_of: Callable[[User], Listing]
) -> None:
    owner = replicas.user()
    listing = listing_of(owner)
    # What was there (a default workspace, a personal organization), then 20 more.
    existing, _ = listing.page(owner.anywhere(), "", 1000)
    existing += [listing.add(owner.anywhere()) for _ in range(20)]
    seen: list[str] = []
    inserted: list[str] = []
    token, replica, fetched = "", 0, 0
    while fetched == 0 or token:
        # Each page from a replica other than the one that issued its token.
        replica = random.choice(replicas.others(replica))
        ids, token = listing.page(owner.on(replica), token, PAGE_SIZE)
        seen += ids
        fetched += 1
        inserted += [listing.add(owner.anywhere()) for _ in range(2)]
        assert fetched < 50, f"{listing.name}: no last page after {fetched} pages"
    assert len(seen) == len(set(seen)), f"{listing.name}: duplicates across pages"
    missing = set(existing) - set(seen)
    assert not missing, f"{listing.name}: {len(missing)} item(s) missing from the pages"
    assert set(seen) <= set(existing) | set(inserted)
    assert [item for item in seen if item in set(existing)] == existing, "out of order"


# -- request_id ------------------------------------------------------------------------------


def test_a_create_retried_on_another_replica_returns_the_first_result(
    replicas: Replicas, replica_database: str
) -> None:
    owner = replicas.user()
    request = rpc.CreateOrganizationRequest(name="Retried", request_id=str(uuid.uuid4()))
    first = owner.on(0).CreateOrganization(request).organization
    for replica in replicas.others(0):
        assert owner.on(replica).CreateOrganization(request).organization == first

    workspace = rpc.CreateWorkspaceRequest(
        organization_id=first.id, name="Retried", request_id=str(uuid.uuid4())
    )
    created = [owner.on(replica).CreateWorkspace(workspace).workspace for replica in range(3)]
    assert len({w.id for w in created}) == 1

    # The same request at the same moment on every replica: one organization.
    name = f"Raced {uuid.uuid4().hex[:8]}"
    raced = rpc.CreateOrganizationRequest(name=name, request_id=str(uuid.uuid4()))
    outcomes = attempts_together(
        [partial(client.CreateOrganization, raced) for client in owner.clients]
    )
    assert all(o.code == Code.OK for o in outcomes), summary(outcomes)
    assert len({o.response.organization.id for o in outcomes}) == 1
    with connect(replica_database) as conn:
        [(stored,)] = conn.execute("SELECT count(*) FROM organizations WHERE name = %s", (name,))
    assert stored == 1


# -- races between replicas ------------------------------------------------------------------


def remove_member(client: Client, organization_id: str, user_id: str) -> Any:
    return client.RemoveMember(
        rpc.RemoveMemberRequest(organization_id=organization_id, user_id=user_id)
    )


OWNER_RACE_ROUNDS = 30


def test_two_owners_removing_each_other_on_different_replicas_leave_one(replicas: Replicas) -> None:
    a, b = replicas.user(), replicas.user()
    a_id, b_id = a.user_id, b.user_id
    platform = replicas.platform()
    results: Counter[str] = Counter()
    for round_ in range(OWNER_RACE_ROUNDS):
        organization_id = a.anywhere().create_org().id
        a.anywhere().AddMember(
            rpc.AddMemberRequest(organization_id=organization_id, user_id=b_id, role="owner")
        )
        on_a, on_b = random.sample(range(len(replicas)), 2)
        outcomes = attempts_together(
            [
                partial(remove_member, a.on(on_a), organization_id, b_id),
                partial(remove_member, b.on(on_b), organization_id, a_id),
            ]
        )
        where = f"round {round_} (replicas {on_a} and {on_b}):\n{summary(outcomes)}"
        assert [o.code for o in outcomes].count(Code.OK) == 1, where
        (loss,) = [o for o in outcomes if o.code != Code.OK]
        # Overlapping: LAST_OWNER; the loser ran after the winner: it is no member any more.
        assert (loss.code, loss.reason) in {
            (Code.FAILED_PRECONDITION, "LAST_OWNER"),
            (Code.NOT_FOUND, "ORGANIZATION_NOT_FOUND"),
        }, where
        winner = a_id if outcomes[0].code == Code.OK else b_id
        owners = platform.anywhere().ListMembers(
            rpc.ListMembersRequest(organization_id=organization_id, role="owner")
        )
        assert [m.user.id for m in owners.members] == [winner], where
        results.update(codes(outcomes))
    print(f"\nowner race over {OWNER_RACE_ROUNDS} rounds: {dict(results)}")
    assert results["FAILED_PRECONDITION/LAST_OWNER"] > 0, f"the calls never overlapped: {results}"


ACCEPTERS = 12


def test_concurrent_accepts_of_one_token_on_all_replicas_make_one_member(
    replicas: Replicas, replica_database: str
) -> None:
    owner = replicas.user()
    organization_id = owner.anywhere().create_org().id
    accepters = [replicas.user() for _ in range(ACCEPTERS)]
    for accepter in accepters:
        assert accepter.user_id  # provisioned before the race
    for round_ in range(2):
        invitation = owner.anywhere().CreateInvitation(
            rpc.CreateInvitationRequest(
                organization_id=organization_id,
                email=f"{uuid.uuid4().hex}@example.com",
                role="viewer",
            )
        )
        accept = rpc.AcceptInvitationRequest(token=invitation.token)
        outcomes = attempts_together(
            [partial(u.anywhere().AcceptInvitation, accept) for u in accepters]
        )
        where = f"round {round_}: {codes(outcomes)}"
        assert codes(outcomes) == {
            "OK": 1,
            "FAILED_PRECONDITION/INVITATION_NOT_PENDING": ACCEPTERS - 1,
        }, where
        [winner] = [o.response.member.user.id for o in outcomes if o.code == Code.OK]
        # The winner leaves again, so the next round starts from the owner alone.
        members = owner.anywhere().ListMembers(
            rpc.ListMembersRequest(organization_id=organization_id)
        )
        assert sorted(m.user.id for m in members.members) == sorted([owner.user_id, winner]), where
        owner.anywhere().RemoveMember(
            rpc.RemoveMemberRequest(organization_id=organization_id, user_id=winner)
        )
    with connect(replica_database) as conn:
        [(accepted,)] = conn.execute(
            "SELECT count(*) FROM audit_events WHERE organization_id = %s"
            " AND action = 'invitation.accepted'",
            (organization_id,),
        )
    assert accepted == 2


# -- counters --------------------------------------------------------------------------------

COUNTER_USERS = 8
COUNTER_OPERATIONS = 120


def test_counters_stay_exact_under_joins_and_leaves_on_all_replicas(
    replicas: Replicas, replica_database: str
) -> None:
    owner = replicas.user()
    organization = owner.anywhere().create_org()
    organization_id = organization.id
    users = [replicas.user() for _ in range(COUNTER_USERS)]
    user_ids = [user.user_id for user in users]
    workspaces: list[str] = []

    def join() -> Any:
        return owner.anywhere().AddMember(
            rpc.AddMemberRequest(
                organization_id=organization_id, user_id=random.choice(user_ids), role="viewer"
            )
        )

    def leave() -> Any:
        user = random.choice(users)
        return user.anywhere().RemoveMember(
            rpc.RemoveMemberRequest(organization_id=organization_id, user_id=user.user_id)
        )

    def remove() -> Any:
        return owner.anywhere().RemoveMember(
            rpc.RemoveMemberRequest(
                organization_id=organization_id, user_id=random.choice(user_ids)
            )
        )

    def create_workspace() -> Any:
        request = rpc.CreateWorkspaceRequest(organization_id=organization_id, name="Counted")
        workspace = owner.anywhere().CreateWorkspace(request).workspace
        workspaces.append(workspace.id)
        return workspace

    def delete_workspace() -> Any:
        workspace_id = random.choice(workspaces or ["00000000-0000-4000-8000-000000000000"])
        return owner.anywhere().DeleteWorkspace(
            rpc.DeleteWorkspaceRequest(organization_id=organization_id, workspace_id=workspace_id)
        )

    kinds = [join, leave, remove, create_workspace, delete_workspace]
    plan = [random.choice(kinds) for _ in range(COUNTER_OPERATIONS)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, plan))

    # Only the answers a serial order allows: done, already a member, no longer there.
    allowed = {Code.OK, Code.ALREADY_EXISTS, Code.NOT_FOUND}
    wrong = [o for o in outcomes if o.code not in allowed]
    assert not wrong, summary(wrong)
    done = Counter(
        kind.__name__ for kind, o in zip(plan, outcomes, strict=True) if o.code == Code.OK
    )
    with connect(replica_database) as conn:
        [(member_count, workspace_count, members, stored_workspaces)] = conn.execute(
            "SELECT member_count, workspace_count,"
            " (SELECT count(*) FROM memberships WHERE organization_id = o.id),"
            " (SELECT count(*) FROM workspaces WHERE organization_id = o.id)"
            " FROM organizations o WHERE id = %s",
            (organization_id,),
        )
    assert (member_count, workspace_count) == (members, stored_workspaces), done
    # And they agree with what the callers were told.
    joined = done["join"] - done["leave"] - done["remove"]
    assert members == organization.member_count + joined, done
    made = done["create_workspace"] - done["delete_workspace"]
    assert stored_workspaces == organization.workspace_count + made, done


# -- purge -----------------------------------------------------------------------------------

_PURGE_LINE = re.compile(r"purge: (?:deleted (\d+) organization|(another replica is purging))")


def purge_reports(replicas: Replicas, since: list[int]) -> list[list[tuple[str, str]]]:
    """Per replica, its purge log lines after the offsets `since`: (deleted, skipped)."""
    return [
        _PURGE_LINE.findall(service.stderr()[offset:])
        for service, offset in zip(replicas.services, since, strict=True)
    ]


@contextmanager
def purge_lock_held(database_url: str) -> Iterator[None]:
    """Holds the purge job's advisory lock, as a purging replica would, until exit."""
    with connect(database_url) as holder, holder.transaction():
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (PURGE_LOCK_KEY,))
        yield


def organization_rows(database_url: str, organization_id: str) -> int:
    with connect(database_url) as conn:
        [(count,)] = conn.execute(
            "SELECT count(*) FROM organizations WHERE id = %s", (organization_id,)
        )
    return int(count)


def test_the_purge_job_runs_on_one_replica_at_a_time(
    replicas: Replicas, replica_database: str
) -> None:
    owner = replicas.user()
    organization_id = owner.anywhere().create_org().id
    owner.anywhere().DeleteOrganization(
        rpc.DeleteOrganizationRequest(organization_id=organization_id)
    )
    wait = 10 * PURGE_INTERVAL_SECONDS

    # slow: waits for every replica's next purge, twice
    with purge_lock_held(replica_database):
        with connect(replica_database) as conn:
            conn.execute(
                "UPDATE organizations SET purge_time = now() - interval '1 second' WHERE id = %s",
                (organization_id,),
            )
        held = [len(service.stderr()) for service in replicas.services]
        wait_until(
            lambda: all(
                any(skipped for _, skipped in lines) for lines in purge_reports(replicas, held)
            ),
            wait,
            "every replica to skip its purge",
        )
        assert organization_rows(replica_database, organization_id) == 1, (
            "purged while another session held the purge lock"
        )
        released = [len(service.stderr()) for service in replicas.services]

    wait_until(
        lambda: organization_rows(replica_database, organization_id) == 0,
        wait,
        "the organization to be purged",
    )
    # Every replica purges once more after that: none may find the organization again.
    after = [len(service.stderr()) for service in replicas.services]
    wait_until(lambda: all(purge_reports(replicas, after)), wait, "one more purge per replica")
    reports = purge_reports(replicas, released)
    deleted = [sum(int(count) for count, _ in lines if count) for lines in reports]
    assert sum(deleted) == 1, f"organizations purged per replica: {deleted}"


# -- caches ----------------------------------------------------------------------------------


def seconds_until_denied(
    client: Client, request: rpc.CheckPermissionRequest, since: float, timeout: float
) -> float | None:
    """Repeats the check until the caller is no member (NOT_FOUND): seconds from `since`."""
    while time.monotonic() < since + timeout:
        outcome = attempt(lambda: client.CheckPermission(request))
        if outcome.code == Code.NOT_FOUND:
            return time.monotonic() - since
        assert outcome.code == Code.OK, outcome
        assert outcome.response.allowed, outcome
        time.sleep(0.01)
    return None


@dataclass(frozen=True)
class Convergence:
    at_once: Outcome  # the member's check on the replica that removed it, right after
    fully_consistent: list[Outcome]  # fully consistent checks on every replica, right after
    seconds: list[float | None]  # per other replica, until its cached check denied


def remove_and_watch(replicas: Replicas, timeout: float) -> Convergence:
    """A member, whose access every replica has cached, is removed through replica 0."""
    owner, member = replicas.user(), replicas.user()
    organization_id = owner.on(0).create_org().id
    owner.on(0).AddMember(
        rpc.AddMemberRequest(organization_id=organization_id, user_id=member.user_id, role="viewer")
    )
    cached = rpc.CheckPermissionRequest(organization_id=organization_id, permission=CHECK)
    fresh = rpc.CheckPermissionRequest(
        organization_id=organization_id,
        permission=CHECK,
        consistency=rpc.CONSISTENCY_FULLY_CONSISTENT,
    )
    for client in member.clients:
        assert client.CheckPermission(cached).allowed
    others = replicas.others(0)
    with ThreadPoolExecutor(len(others)) as pool:
        owner.on(0).RemoveMember(
            rpc.RemoveMemberRequest(organization_id=organization_id, user_id=member.user_id)
        )
        removed = time.monotonic()
        watches = [
            pool.submit(seconds_until_denied, member.on(r), cached, removed, timeout)
            for r in others
        ]
        at_once = attempt(lambda: member.on(0).CheckPermission(cached))
        fully_consistent = [attempt(partial(c.CheckPermission, fresh)) for c in member.clients]
        return Convergence(at_once, fully_consistent, [watch.result() for watch in watches])


def assert_converged(rounds: list[Convergence], limit: float, figures: str) -> None:
    for convergence in rounds:
        assert convergence.at_once.code == Code.NOT_FOUND, (
            f"the replica that removed the member still grants access: {convergence.at_once}"
        )
        stale = [o for o in convergence.fully_consistent if o.code != Code.NOT_FOUND]
        assert not stale, f"fully consistent checks answered stale:\n{summary(stale)}"
        assert all(s is not None and s < limit for s in convergence.seconds), (
            f"caches converged after more than {limit:.2f}s: {figures}"
        )


def describe(rounds: list[Convergence]) -> str:
    seconds = [s for c in rounds for s in c.seconds if s is not None]
    never = sum(s is None for c in rounds for s in c.seconds)
    slowest = f"{max(seconds):.3f}s" if seconds else "-"
    median = f"{sorted(seconds)[len(seconds) // 2]:.3f}s" if seconds else "-"
    return f"median {median}, slowest {slowest} over {len(seconds)} replica(s), {never} never"


def test_caches_converge_at_once_through_notifications(replicas: Replicas) -> None:
    rounds = [remove_and_watch(replicas, CACHE_SECONDS + 2) for _ in range(5)]
    figures = describe(rounds)
    print(f"\ncache convergence with notifications: {figures}")
    assert_converged(rounds, NOTIFIED_LIMIT, figures)


def seconds_until_listed(
    client: Client, organization_id: str, expected: dict[str, str], since: float
) -> float | None:
    """Repeats ListMembers until it shows `expected` (user id -> display name)."""
    request = rpc.ListMembersRequest(organization_id=organization_id, page_size=50)
    while time.monotonic() < since + CACHE_SECONDS + 2:
        reply = client.ListMembers(request)
        if {m.user.id: m.user.display_name for m in reply.members} == expected:
            return time.monotonic() - since
        time.sleep(0.01)
    return None


def test_cached_member_lists_converge_through_notifications(replicas: Replicas) -> None:
    """A member list every replica has cached: a member added, then a member's new name
    (from a newer token), both through replica 0."""
    owner, member = replicas.user(name="Owner"), replicas.user(name="Before")
    organization_id = owner.on(0).create_org().id
    owner_id, member_id = owner.user_id, member.user_id
    expected = {owner_id: "Owner"}
    for client in owner.clients:  # every replica caches the list
        assert seconds_until_listed(client, organization_id, expected, time.monotonic()) is not None
    changes: dict[str, Callable[[], object]] = {
        "member added": lambda: owner.on(0).AddMember(
            rpc.AddMemberRequest(organization_id=organization_id, user_id=member_id, role="viewer")
        ),
        "member renamed": lambda: replicas.user(member.subject, name="After").on(0).user_id,
    }
    figures = {}
    for what, change in changes.items():
        change()
        changed = time.monotonic()
        expected[member_id] = "Before" if what == "member added" else "After"
        at_once = owner.on(0).ListMembers(rpc.ListMembersRequest(organization_id=organization_id))
        shown = {m.user.id: m.user.display_name for m in at_once.members}
        assert shown == expected, f"{what}: the replica that made the change answered stale"
        figures[what] = [
            seconds_until_listed(owner.on(r), organization_id, expected, changed)
            for r in replicas.others(0)
        ]
    print(f"\nmember lists converged on the other replicas after (s): {figures}")
    for what, seconds in figures.items():
        assert all(s is not None and s < NOTIFIED_LIMIT for s in seconds), f"{what}: {seconds}"


def test_caches_converge_within_the_bound_without_notifications(
    replica_database: str, pgbouncer: PgBouncer, tmp_path: Path
) -> None:
    """Through PgBouncer without a listen URL, no replica hears of changes: the bound
    alone ends staleness."""
    pooled = pgbouncer.url(make_url(replica_database).database or "")
    with running_replicas(
        tmp_path,
        pooled,
        2,
        *("--database-pooler", "pgbouncer"),
        *("--authz-cache-seconds", str(POLLED_CACHE_SECONDS)),
    ) as pooled_replicas:
        rounds = [remove_and_watch(pooled_replicas, POLLED_CACHE_SECONDS + 2) for _ in range(2)]
    figures = describe(rounds)
    print(f"\ncache convergence without notifications (bound {POLLED_CACHE_SECONDS}s): {figures}")
    assert_converged(rounds, POLLED_CACHE_SECONDS + BOUND_MARGIN, figures)
