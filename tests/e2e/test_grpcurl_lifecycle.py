"""An organization's life through the real server and grpcurl, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from datetime import timedelta

import grpc
import pytest

from tests.e2e.conftest import SERVICE
from tests.e2e.conftest import ServiceProcess
from tests.e2e.conftest import grpcurl_list


@pytest.fixture(scope="module")
def service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One server per backend for this module (tests use fresh users)."""
    server = ServiceProcess(tmp_path_factory.mktemp("lifecycle"), "--database-url", database_url)
    try:
        yield server.start().wait_until_serving()
    finally:
        server.close()


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_reflection_lists_the_services(service: ServiceProcess) -> None:
    services = grpcurl_list(service.port)
    assert SERVICE in services
    assert "grpc.health.v1.Health" in services


def test_calls_without_a_valid_token_are_unauthenticated(service: ServiceProcess) -> None:
    missing = service.call_fails(grpc.StatusCode.UNAUTHENTICATED, "GetCurrentUser")
    garbage = service.call_fails(
        grpc.StatusCode.UNAUTHENTICATED, "GetCurrentUser", token="not-a-jwt"
    )
    assert missing.message == garbage.message  # one generic message
    assert "not-a-jwt" not in garbage.stderr


def test_organization_lifecycle(service: ServiceProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    alice = service.token(f"alice-{suffix}", email=f"alice-{suffix}@example.com")
    slug = f"acme-{suffix}"

    created = service.call("CreateOrganization", {"name": "Acme", "slug": slug}, alice)
    org = created["organization"]
    assert (org["name"], org["slug"], org["state"]) == ("Acme", slug, "ORGANIZATION_STATE_ACTIVE")
    assert org["member_count"] == 1
    assert org["etag"]
    org_id = org["id"]

    by_id = service.call("GetOrganization", {"organization_id": org_id}, alice)
    by_slug = service.call("GetOrganization", {"slug": slug}, alice)
    assert by_id == by_slug == created

    listed = service.call("ListOrganizations", {}, alice)
    slugs = [o["slug"] for o in listed["organizations"]]
    assert slug in slugs
    assert listed["total_size"] == len(slugs) == 2  # with alice's personal organization

    update = {
        "organization": {"id": org_id, "name": "Acme Rockets", "etag": org["etag"]},
        # grpcurl 1.8.6 takes a FieldMask in its object form, not the "a,b" string form.
        "update_mask": {"paths": ["name"]},
    }
    updated = service.call("UpdateOrganization", update, alice)["organization"]
    assert (updated["name"], updated["slug"]) == ("Acme Rockets", slug)
    assert updated["etag"] != org["etag"]
    stale = service.call_fails(grpc.StatusCode.ABORTED, "UpdateOrganization", update, alice)
    assert "ETAG_MISMATCH" in stale.stderr

    deleted = service.call(
        "DeleteOrganization", {"organization_id": org_id, "etag": updated["etag"]}, alice
    )["organization"]
    assert deleted["state"] == "ORGANIZATION_STATE_DELETED"
    assert _time(deleted["purge_time"]) - _time(deleted["delete_time"]) == timedelta(days=30)
    listed = service.call("ListOrganizations", {}, alice)
    assert slug not in [o["slug"] for o in listed["organizations"]]

    bob = service.token(f"bob-{suffix}", email=f"bob-{suffix}@example.com")
    service.call_fails(
        grpc.StatusCode.NOT_FOUND, "GetOrganization", {"organization_id": org_id}, bob
    )

    undeleted = service.call("UndeleteOrganization", {"organization_id": org_id}, alice)
    assert undeleted["organization"]["state"] == "ORGANIZATION_STATE_ACTIVE"
    assert undeleted["organization"]["name"] == "Acme Rockets"
