"""Retention (OPERATIONS.md): the purge job deletes organizations past purge_time with all
their rows, idempotency records older than 24 hours and invitations 30 days after they
ended; `orgservice purge` runs it once and says what it deleted. On SQLite and
PostgreSQL (`api`); the one-replica-at-a-time lock on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import grpc
import psycopg
import pytest
from orgs.v1 import organization_service_pb2 as rpc
from sqlalchemy import text

from orgservice.storage.retention import PURGE_LOCK_KEY
from orgservice.storage.retention import PurgeReport
from orgservice.storage.retention import purge
from tests.conftest import Api
from tests.conftest import failure

Code = grpc.StatusCode
TENANT_TABLES = ("roles", "memberships", "workspaces", "invitations", "audit_events")


def execute(api: Api, statement: str, **values: Any) -> None:
    with api.engine.connect() as connection:
        connection.execute(text(statement), values)
        connection.commit()


def count(api: Api, statement: str, **values: Any) -> int:
    with api.engine.connect() as connection:
        return int(connection.execute(text(statement), values).scalar_one())


def rows_of(api: Api, organization_id: str) -> dict[str, int]:
    found = {
        table: count(
            api, f"SELECT count(*) FROM {table} WHERE organization_id = :o", o=organization_id
        )
        for table in TENANT_TABLES
    }
    found["organizations"] = count(
        api, "SELECT count(*) FROM organizations WHERE id = :o", o=organization_id
    )
    found["organization_slugs"] = count(
        api, "SELECT count(*) FROM organization_slugs WHERE organization_id = :o", o=organization_id
    )
    return found


def now() -> datetime:
    return datetime.now(UTC)


def purge_now(api: Api) -> PurgeReport:
    """The purge job, run as the server runs it."""
    return api.on_server(lambda: purge(api.server.database, now()))


def test_an_organization_past_purge_time_goes_with_all_its_rows(api: Api) -> None:
    owner = api.client()
    slug = f"purged-{uuid.uuid4().hex[:8]}"
    organization = owner.create_org(slug=slug)
    owner.CreateInvitation(
        rpc.CreateInvitationRequest(
            organization_id=organization.id,
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            role="viewer",
        )
    )
    kept = owner.create_org()
    owner.DeleteOrganization(rpc.DeleteOrganizationRequest(organization_id=organization.id))
    assert all(rows_of(api, organization.id).values())

    report = purge_now(api)
    assert report.organizations == 0  # deleted, but purge_time is 30 days away

    execute(
        api,
        "UPDATE organizations SET purge_time = :t WHERE id = :o",
        t=now() - timedelta(seconds=1),
        o=organization.id,
    )
    report = purge_now(api)
    assert report.organizations == 1
    assert set(rows_of(api, organization.id).values()) == {0}
    assert rows_of(api, kept.id)["memberships"] == 1
    # Gone for everyone, and its slug is free again.
    gone = failure(
        lambda: owner.GetOrganization(rpc.GetOrganizationRequest(organization_id=organization.id))
    )
    assert gone.code == Code.NOT_FOUND
    assert owner.create_org(slug=slug).slug == slug


def test_idempotency_records_older_than_a_day_go(api: Api) -> None:
    owner = api.client()
    request_id = str(uuid.uuid4())
    first = owner.create_org(request_id=request_id)
    user_id = owner.user_id
    execute(
        api,
        "UPDATE idempotency_keys SET create_time = :t WHERE user_id = :u",
        t=now() - timedelta(hours=25),
        u=user_id,
    )
    report = purge_now(api)
    assert report.idempotency_keys >= 1
    assert count(api, "SELECT count(*) FROM idempotency_keys WHERE user_id = :u", u=user_id) == 0
    # The request_id no longer replays: the same request creates a second organization.
    assert owner.create_org(name=first.name, request_id=request_id).id != first.id


def test_invitations_go_thirty_days_after_they_ended(api: Api) -> None:
    owner = api.client()
    organization = owner.create_org()

    def invite() -> str:
        email = f"{uuid.uuid4().hex[:8]}@example.com"
        reply = owner.CreateInvitation(
            rpc.CreateInvitationRequest(organization_id=organization.id, email=email, role="viewer")
        )
        return str(reply.invitation.id)

    revoked_long_ago, revoked_lately, expired_long_ago, pending = (invite() for _ in range(4))
    for invitation_id in (revoked_long_ago, revoked_lately):
        owner.RevokeInvitation(rpc.RevokeInvitationRequest(invitation_id=invitation_id))
    month_ago = now() - timedelta(days=31)
    execute(
        api,
        "UPDATE invitations SET update_time = :t WHERE id = :i",
        t=month_ago,
        i=revoked_long_ago,
    )
    execute(
        api,
        "UPDATE invitations SET expire_time = :t WHERE id = :i",
        t=month_ago,
        i=expired_long_ago,
    )
    purge_now(api)
    left = {
        row
        for row in (revoked_long_ago, revoked_lately, expired_long_ago, pending)
        if count(api, "SELECT count(*) FROM invitations WHERE id = :i", i=row)
    }
    assert left == {revoked_lately, pending}


@pytest.mark.postgres_only
def test_one_replica_purges_at_a_time(pg_api: Api, postgres_url: str) -> None:
    """While another session holds the purge lock, a purge does nothing and says so."""
    direct = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    holding = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(direct) as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (PURGE_LOCK_KEY,))
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert holding.wait(10)
        report = purge_now(pg_api)
        assert report.skipped
        assert "another replica" in str(report)
    finally:
        release.set()
        holder.join()
    assert not purge_now(pg_api).skipped


def test_orgservice_purge_prints_what_it_deleted(api: Api, database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orgservice", "purge", "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deleted "), result.stdout
    assert "organization(s)" in result.stdout
