"""WatchEvents across real `orgservice serve` processes on one database: watchers on one
replica, writers on another.

On PostgreSQL the writers run concurrent transactions of different lengths: a trigger
(test infrastructure in the test's own database) holds some transactions open after
their audit event is written, so transactions commit out of the order in which they
started, across organizations. Every watcher must still see every event exactly as the
audit log holds them, in commit order per organization, within a second of its commit
(notifications). On SQLite the replicas have no notifications and poll.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc
from sqlalchemy import Engine

from orgservice import devkeys
from orgservice.storage.database import create_database_engine
from tests.conftest import BACKENDS
from tests.conftest import Client
from tests.conftest import new_postgres_database
from tests.conftest import require_postgres_tests
from tests.e2e.conftest import GRPCURL
from tests.e2e.conftest import SERVICE
from tests.e2e.conftest import ServiceProcess
from tests.e2e.conftest import StartService
from tests.support.feed import Received
from tests.support.feed import Watcher
from tests.support.feed import audit_log
from tests.support.feed import commit_order

Code = grpc.StatusCode
DELIVERY_SECONDS = 1.0
WRITERS = 4
WRITES_PER_WRITER = 6

# Holds a transaction open after it wrote an audit event for a workspace whose slug is
# `slow-N-...`, for N tenths of a second: it then commits after transactions that
# started later.
SLOW_COMMITS = """
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF starts_with(NEW.details->>'slug', 'slow-') THEN
    PERFORM pg_sleep(split_part(NEW.details->>'slug', '-', 2)::int / 10.0);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER slow_commit AFTER INSERT ON audit_events
  FOR EACH ROW EXECUTE FUNCTION slow_commit();
"""


@dataclass
class Replicas:
    """Two servers on one database, sharing the dev key and the cursor secret."""

    watched: ServiceProcess
    written: ServiceProcess
    engine: Engine
    key: devkeys.Ed25519PrivateKey

    def client(self, service: ServiceProcess, subject: str, **claims: str) -> Client:
        channel = grpc.insecure_channel(f"127.0.0.1:{service.port}")
        return Client(channel, devkeys.mint_token(self.key, subject=subject, **claims), subject)

    def watcher(self, client: Client, organization_id: str = "", cursor: str = "") -> Watcher:
        channel = grpc.insecure_channel(f"127.0.0.1:{self.watched.port}")
        return Watcher(channel, client.token, organization_id, cursor)


def start_replicas(start_service: StartService, tmp_path: Path, database_url: str) -> Replicas:
    key_file = tmp_path / "shared-key"
    env = {
        "ORGSERVICE_DATABASE_URL": database_url,
        "ORGSERVICE_DEV_KEY_FILE": str(key_file),
        "ORGSERVICE_PAGE_TOKEN_SECRET": uuid.uuid4().hex,
    }
    # Started together, as replicas are: both create the shared key if it is missing.
    watched = start_service(env=env, wait=False)
    written = start_service(env=env, wait=False)
    for service in (watched, written):
        service.wait_until_serving()
    return Replicas(
        watched, written, create_database_engine(database_url), devkeys.load_or_create(key_file)
    )


@pytest.fixture
def postgres_replicas(start_service: StartService, tmp_path: Path) -> Iterator[Replicas]:
    require_postgres_tests()
    with new_postgres_database() as url:
        replicas = start_replicas(start_service, tmp_path, url)
        try:
            with replicas.engine.begin() as connection:
                connection.exec_driver_sql(SLOW_COMMITS)
            yield replicas
        finally:
            replicas.watched.close()
            replicas.written.close()
            replicas.engine.dispose()


def create_workspace(client: Client, organization_id: str, slug: str) -> tuple[str, float]:
    """The new workspace's id and when its creation was known committed."""
    reply = client.CreateWorkspace(
        rpc.CreateWorkspaceRequest(organization_id=organization_id, name=slug, slug=slug)
    )
    return str(reply.workspace.id), time.monotonic()


def write_concurrently(client: Client, organization_ids: list[str]) -> dict[str, float]:
    """WRITERS threads create workspaces in the organizations at random, one in three
    held open 0.1-0.6 s after its event is written; returns commit times by id."""
    committed: dict[str, float] = {}
    lock = threading.Lock()

    def writer(number: int) -> None:
        chosen = random.Random(number)
        for write in range(WRITES_PER_WRITER):
            slow = chosen.random() < 1 / 3
            slug = f"slow-{chosen.randint(1, 6)}" if slow else "fast"
            workspace_id, at = create_workspace(
                client,
                chosen.choice(organization_ids),
                f"{slug}-{number}-{write}-{uuid.uuid4().hex[:6]}",
            )
            with lock:
                committed[workspace_id] = at

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))
    return committed


def wait_until_marked(replicas: Replicas, writer: Client, watcher: Watcher) -> int:
    """Writes marker events until the watcher (from now) receives one: from then on it
    receives everything. Returns how many responses came until then."""
    marker_org = writer.create_org().id
    for _ in range(50):
        create_workspace(writer, marker_org, f"marker-{uuid.uuid4().hex[:8]}")
        time.sleep(0.2)
        if any(r.event.organization_id == marker_org for r in watcher.received):
            return len(watcher.received)
    pytest.fail("the stream of every organization never started")


def test_watchers_see_every_event_from_the_other_replica_in_commit_order(
    postgres_replicas: Replicas,
) -> None:
    replicas = postgres_replicas
    owner = replicas.client(replicas.written, "feed-owner")
    platform = replicas.client(replicas.watched, "feed-platform", scope="orgs:admin")
    orgs = [owner.create_org().id for _ in range(2)]
    reader = replicas.client(replicas.watched, "feed-owner")
    cursors = {
        org: reader.ListAuditEvents(rpc.ListAuditEventsRequest(organization_id=org)).watch_cursor
        for org in orgs
    }
    before = {org: commit_order(replicas.engine, org) for org in orgs}
    watchers = {org: replicas.watcher(reader, org, cursors[org]) for org in orgs}
    everything = replicas.watcher(platform)
    try:
        skip = wait_until_marked(replicas, owner, everything)
        committed = write_concurrently(owner, orgs)
        expected = {org: commit_order(replicas.engine, org)[len(before[org]) :] for org in orgs}
        assert sum(map(len, expected.values())) == WRITERS * WRITES_PER_WRITER
        latencies: list[float] = []
        starts: list[tuple[datetime, float]] = []  # (transaction start, commit known)
        for org in orgs:
            received = watchers[org].wait_for(len(expected[org]))
            time.sleep(0.3)  # and nothing more
            assert watchers[org].ids() == expected[org], "exactly once, in commit order"
            log = audit_log(reader, org)
            assert [r.event for r in received] == [log[i] for i in expected[org]]
            latencies += [r.at - committed[r.event.target_id] for r in received]
            starts += [
                (r.event.create_time.ToDatetime(), committed[r.event.target_id]) for r in received
            ]
        total = skip + sum(map(len, expected.values()))
        everything.wait_for(total)
        later = everything.received[skip:]
        for org in orgs:
            assert [r.event.id for r in later if r.event.organization_id == org] == expected[org]
        assert max(latencies) < DELIVERY_SECONDS, sorted(latencies)[-3:]
        commits_by_start = [commit for _, commit in sorted(starts)]
        assert commits_by_start != sorted(commits_by_start), "no commit overtook another"
    finally:
        for watcher in [*watchers.values(), everything]:
            watcher.cancel()


def test_a_watcher_of_every_organization_sees_creations_on_the_other_replica_in_a_second(
    postgres_replicas: Replicas,
) -> None:
    """A creation notifies no other process: the watcher's own replica looks for new
    events twice a second."""
    replicas = postgres_replicas
    owner = replicas.client(replicas.written, "creating-owner")
    platform = replicas.client(replicas.watched, "creations-platform", scope="orgs:admin")
    with replicas.watcher(platform) as everything:
        wait_until_marked(replicas, owner, everything)
        latencies = []
        for _ in range(5):
            organization_id = owner.create_org().id
            created = time.monotonic()
            received = everything.wait_for_event(
                lambda event, created_id=organization_id: event.organization_id == created_id
            )
            assert received.event.action == "organization.created"
            latencies.append(received.at - created)
            time.sleep(random.uniform(0, 0.5))
    assert max(latencies) < DELIVERY_SECONDS, latencies


def test_a_watcher_that_resumes_on_the_other_replica_misses_nothing(
    postgres_replicas: Replicas,
) -> None:
    replicas = postgres_replicas
    owner = replicas.client(replicas.written, "resume-owner")
    org = owner.create_org().id
    cursor = owner.ListAuditEvents(rpc.ListAuditEventsRequest(organization_id=org)).watch_cursor
    start = len(commit_order(replicas.engine, org))
    received: list[Received] = []
    with ThreadPoolExecutor(1) as pool:
        writing = pool.submit(write_concurrently, owner, [org])
        # Watch a few events on one replica, go away, resume on the other; repeat.
        service = replicas.watched
        while not writing.done() or len(received) < len(commit_order(replicas.engine, org)) - start:
            channel = grpc.insecure_channel(f"127.0.0.1:{service.port}")
            with Watcher(channel, owner.token, org, cursor) as watcher:
                time.sleep(0.4)
            channel.close()
            received += watcher.received
            if watcher.received:
                cursor = watcher.received[-1].cursor
            service = replicas.written if service is replicas.watched else replicas.watched
        writing.result()
    log = audit_log(owner, org)
    expected = commit_order(replicas.engine, org)[start:]
    assert [r.event.id for r in received] == expected
    assert [r.event for r in received] == [log[i] for i in expected]


def test_a_watcher_removed_on_the_other_replica_is_ended(postgres_replicas: Replicas) -> None:
    replicas = postgres_replicas
    owner = replicas.client(replicas.written, "removing-owner")
    admin = replicas.client(replicas.watched, "removed-admin")
    org = owner.create_org().id
    admin_id = admin.user_id
    owner.AddMember(rpc.AddMemberRequest(organization_id=org, user_id=admin_id, role="admin"))
    cursor = admin.ListAuditEvents(rpc.ListAuditEventsRequest(organization_id=org)).watch_cursor
    with replicas.watcher(admin, org, cursor) as watcher:
        create_workspace(owner, org, "seen")
        watcher.wait_for(1)
        owner.RemoveMember(rpc.RemoveMemberRequest(organization_id=org, user_id=admin_id))
        removed = time.monotonic()
        ended = watcher.wait_for_end(timeout=10)
        assert (ended.code, ended.reason) == (Code.NOT_FOUND, "ORGANIZATION_NOT_FOUND")
        assert time.monotonic() - removed < DELIVERY_SECONDS + 0.5


def test_sigterm_ends_open_streams_with_unavailable(postgres_replicas: Replicas) -> None:
    replicas = postgres_replicas
    owner = replicas.client(replicas.written, "shutdown-owner")
    org = owner.create_org().id
    cursor = owner.ListAuditEvents(rpc.ListAuditEventsRequest(organization_id=org)).watch_cursor
    with replicas.watcher(owner, org, cursor) as watcher:
        create_workspace(owner, org, "before-shutdown")
        watcher.wait_for(1)
        started = time.monotonic()
        replicas.watched.process.send_signal(signal.SIGTERM)
        ended = watcher.wait_for_end(timeout=10)
        assert (ended.code, ended.reason) == (Code.UNAVAILABLE, "SHUTTING_DOWN")
        assert time.monotonic() - started < 2
    assert replicas.watched.process.wait(10) == 0


def test_replicas_without_notifications_poll_within_a_second(
    start_service: StartService, tmp_path: Path
) -> None:
    """Two processes on one SQLite file: nothing tells one of the other's commits."""
    if "sqlite" not in BACKENDS:
        pytest.skip("SQLite tests not selected (ORGSERVICE_TEST_DATABASES)")
    replicas = start_replicas(start_service, tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")
    try:
        owner = replicas.client(replicas.written, "polled-owner")
        org = owner.create_org().id
        cursor = owner.ListAuditEvents(rpc.ListAuditEventsRequest(organization_id=org)).watch_cursor
        with replicas.watcher(owner, org, cursor) as watcher:
            latencies = []
            for n in range(1, 6):
                _, committed = create_workspace(owner, org, f"polled-{n}")
                latencies.append(watcher.wait_for(n)[-1].at - committed)
                time.sleep(random.uniform(0, 0.5))
        assert max(latencies) < DELIVERY_SECONDS, latencies
    finally:
        replicas.engine.dispose()


def test_grpcurl_prints_streamed_events_as_they_arrive(start_service: StartService) -> None:
    service = start_service()
    token = service.token("grpcurl-watcher")
    org = service.call("CreateOrganization", {"name": "Watched"}, token=token)["organization"]
    command = [
        str(GRPCURL),
        "-plaintext",
        "-max-time",
        "20",
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        f'{{"organization_id": "{org["id"]}"}}',
        f"localhost:{service.port}",
        f"{SERVICE}/WatchEvents",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as grpcurl:
        try:
            time.sleep(1)  # the stream is open (from now)
            service.call(
                "CreateWorkspace", {"organizationId": org["id"], "name": "Streamed"}, token=token
            )
            assert grpcurl.stdout is not None
            lines = []
            while '"cursor"' not in "".join(lines):
                lines.append(grpcurl.stdout.readline())
            assert '"action": "workspace.created"' in "".join(lines)
        finally:
            grpcurl.kill()
