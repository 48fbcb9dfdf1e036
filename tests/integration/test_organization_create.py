"""CreateOrganization against a real server on SQLite and PostgreSQL (`api`): the
caller becomes the owner, names are trimmed, slugs are derived or given and unique,
invalid fields are all reported at once, values at the limits pass."""

from __future__ import annotations

import re
import time
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

from orgservice.storage.sql import NOTIFY_CHANNEL
from tests.conftest import Api
from tests.conftest import failure
from tests.support.clients import tag
from tests.support.organizations import ACTIVE
from tests.support.organizations import SLUG_RE
from tests.support.organizations import get_org
from tests.support.organizations import list_all
from tests.support.organizations import memberships
from tests.support.organizations import when
from tests.support.pgbouncer import direct_conninfo
from tests.support.pgbouncer import direct_url_for
from tests.support.processes import poll

Code = grpc.StatusCode


def test_create_makes_the_caller_owner_with_a_default_workspace(api: Api) -> None:
    alice = api.client()
    name = f"Widgets {tag()}"
    before = datetime.now(UTC)

    organization = alice.create_org(name, description="we make widgets", labels={"tier": "gold"})

    assert uuid.UUID(organization.id).version == 4
    assert organization.name == name
    assert organization.description == "we make widgets"
    assert dict(organization.labels) == {"tier": "gold"}
    assert organization.personal is False
    assert organization.state == ACTIVE
    assert organization.member_count == 1
    assert organization.workspace_count == 1
    assert organization.etag
    assert organization.HasField("create_time")
    assert organization.HasField("update_time")
    assert when(organization.create_time) >= before - timedelta(seconds=5)
    assert organization.update_time == organization.create_time
    assert not organization.HasField("delete_time")
    assert not organization.HasField("purge_time")
    assert memberships(alice)[organization.id] == (organization.slug, "owner")
    assert get_org(alice, organization.id) == organization


def test_create_trims_the_name(api: Api) -> None:
    name = f"Trimmed {tag()}"
    organization = api.client().create_org(f"  {name}\t ")
    assert organization.name == name


@pytest.mark.parametrize(
    ("name", "expected_base"),
    [
        ("Acme Inc", "acme-inc"),
        ("  Hello,   World!  ", "hello-world"),
        ("Café Crème", "cafe-creme"),
        ("ACME__Corp", "acme-corp"),
    ],
)
def test_create_derives_the_slug_from_the_name(api: Api, name: str, expected_base: str) -> None:
    unique = tag()
    organization = api.client().create_org(f"{name} {unique}")
    assert organization.slug == f"{expected_base}-{unique}"


def test_same_name_twice_gets_a_second_slug_with_a_suffix(api: Api) -> None:
    alice = api.client()
    first = alice.create_org("Acme Inc")
    second = alice.create_org("Acme Inc")

    assert first.slug != second.slug
    for organization in (first, second):
        assert SLUG_RE.match(organization.slug), organization.slug
        assert re.fullmatch(r"acme-inc(-[a-z0-9]+)?", organization.slug), organization.slug
    # At most one of them can be the bare derived slug; the other carries a suffix.
    assert {first.slug, second.slug} - {"acme-inc"}
    # Each created event names the slug its organization got.
    for organization in (first, second):
        [event] = alice.ListAuditEvents(
            rpc.ListAuditEventsRequest(organization_id=organization.id)
        ).events
        assert (event.action, event.details["slug"]) == ("organization.created", organization.slug)


def test_the_created_event_is_the_organizations_first_and_the_next_follows_it(api: Api) -> None:
    """The created event is inserted with the organization, numbered 1; the next change
    is numbered after it, by the organization's row."""
    owner = api.client()
    organization = owner.create_org()
    owner.CreateWorkspace(
        rpc.CreateWorkspaceRequest(organization_id=organization.id, name="Second")
    )

    with api.engine.connect() as connection:
        events = connection.execute(
            text("SELECT seq, action FROM audit_events WHERE organization_id = :o ORDER BY seq"),
            {"o": organization.id},
        ).all()
        newest = connection.execute(
            text("SELECT event_seq FROM organizations WHERE id = :o"), {"o": organization.id}
        ).scalar_one()
    assert [tuple(event) for event in events] == [
        (1, "organization.created"),
        (2, "workspace.created"),
    ]
    assert newest == 2


@pytest.mark.parametrize("request_id", ["", str(uuid.uuid4())], ids=["alone", "idempotent"])
def test_a_create_notifies_no_other_process_and_a_change_does(pg_api: Api, request_id: str) -> None:
    """Other processes cannot hold an organization that did not exist, so a create
    sends no notification (their watchers of every organization poll), whether it is a
    statement alone or a transaction (with a request id); the first change after it
    does, for their caches and change feeds."""
    owner = pg_api.client()
    owner.create_org()  # provisioned: the next create is the whole of its transaction
    conninfo = direct_conninfo(pg_api.server.settings.database_url)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        organization_id = owner.create_org(request_id=request_id).id
        owner.CreateWorkspace(rpc.CreateWorkspaceRequest(organization_id=organization_id, name="W"))
        heard = [
            notification.payload for notification in listener.notifies(timeout=5, stop_after=1)
        ]
        heard += [notification.payload for notification in listener.notifies(timeout=0.5)]
    assert heard == [organization_id]


def test_a_create_on_a_connection_the_database_closed_is_retried_on_a_fresh_one(
    pg_api: Api,
) -> None:
    """The pooled connections die (as when the database restarts): the create, a
    transaction of its own, is retried only because the server had closed its
    connection before it was sent, so it cannot have run."""
    url = pg_api.server.settings.database_url
    if direct_url_for(url) != url:
        pytest.skip("behind PgBouncer the service's own connections stay up")
    owner = pg_api.client()
    owner.create_org()  # provisioned, and the pool holds connections
    conninfo = direct_conninfo(url)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        terminated = [
            pid
            for (pid,) in admin.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
        assert terminated  # the service's pooled connections among them
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (terminated,)
        )
        poll(
            lambda: (
                admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (terminated,)
                ).fetchone()
                == (0,)
            ),
            5,
            "the terminated backends to exit",
        )
    name = f"After the restart {uuid.uuid4().hex[:8]}"
    assert owner.create_org(name).name == name
    assert [o.name for o in list_all(owner) if o.name == name] == [name]


def test_a_create_never_commits_after_its_deadline_behind_a_locked_profile(pg_api: Api) -> None:
    """A profile change holding the owner's row: the create, which would run alone and
    without a lock timeout, skips the row and waits under its budget instead; once its
    deadline has passed, releasing the row must not let it commit after all."""
    owner = pg_api.client()
    owner.create_org()  # provisioned
    conninfo = direct_conninfo(pg_api.server.settings.database_url)
    name = f"Too late {uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo) as holder:
        holder.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (owner.user_id,))
        error = failure(
            lambda: owner.CreateOrganization(rpc.CreateOrganizationRequest(name=name), timeout=1)
        )
        assert error.code == Code.DEADLINE_EXCEEDED
        holder.rollback()
    time.sleep(0.5)  # what a statement left waiting on the server would need to commit
    assert [o.name for o in list_all(owner) if o.name == name] == []


@pytest.mark.parametrize("name", ["x" * 200, "日本語の組織", "!!", "a", "-- weird --- name --"])
def test_derived_slugs_are_always_valid(api: Api, name: str) -> None:
    organization = api.client().create_org(name)
    assert SLUG_RE.match(organization.slug), organization.slug


def test_create_with_explicit_slug(api: Api) -> None:
    slug = f"explicit-{tag()}"
    organization = api.client().create_org("Whatever Name", slug=slug)
    assert organization.slug == slug


def test_create_with_a_taken_slug_is_already_exists(api: Api) -> None:
    slug = f"taken-{tag()}"
    api.client().create_org(slug=slug)

    error = failure(lambda: api.client().create_org(slug=slug))

    assert error.code == Code.ALREADY_EXISTS
    assert error.reason == "SLUG_TAKEN"


def test_create_with_a_slug_taken_by_a_derived_slug_is_already_exists(api: Api) -> None:
    derived = api.client().create_org(f"Derived {tag()}").slug
    error = failure(lambda: api.client().create_org(slug=derived))
    assert (error.code, error.reason) == (Code.ALREADY_EXISTS, "SLUG_TAKEN")


def many_labels(count: int) -> dict[str, str]:
    return {f"k{i}": "v" for i in range(count)}


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"name": "   "}, "name", id="blank-name"),
        pytest.param({"name": "x" * 201}, "name", id="long-name"),
        pytest.param({"name": "bad\x07name"}, "name", id="control-char-name"),
        pytest.param({"name": "line\nbreak"}, "name", id="newline-name"),
        pytest.param({"slug": "A_B"}, "slug", id="bad-slug"),
        pytest.param({"slug": "ab"}, "slug", id="short-slug"),
        pytest.param({"slug": "-abc"}, "slug", id="slug-leading-dash"),
        pytest.param({"slug": "a" * 64}, "slug", id="long-slug"),
        pytest.param({"description": "d" * 2001}, "description", id="long-description"),
        pytest.param({"labels": many_labels(65)}, "labels", id="too-many-labels"),
        pytest.param({"labels": {"9x": "v"}}, "labels", id="bad-label-key"),
        pytest.param({"labels": {"Key": "v"}}, "labels", id="uppercase-label-key"),
        pytest.param({"labels": {"k" * 64: "v"}}, "labels", id="long-label-key"),
        pytest.param({"labels": {"k": "v" * 257}}, "labels", id="long-label-value"),
    ],
)
def test_create_rejects_invalid_fields(api: Api, fields: dict[str, Any], bad_field: str) -> None:
    request = {"name": f"Valid {tag()}", **fields}
    alice = api.client()

    error = failure(lambda: alice.CreateOrganization(rpc.CreateOrganizationRequest(**request)))

    assert error.code == Code.INVALID_ARGUMENT
    assert len(error.violations) == 1, error.violations
    assert error.violations[0].startswith(bad_field)
    assert error.message
    assert not [o for o in list_all(alice) if not o.personal], "nothing may be created"


def test_create_reports_every_bad_field_at_once(api: Api) -> None:
    request = rpc.CreateOrganizationRequest(
        name="", slug="A_B", description="d" * 2001, labels={"9x": "v"}
    )
    error = failure(lambda: api.client().CreateOrganization(request))

    assert error.code == Code.INVALID_ARGUMENT
    assert len(error.violations) == 4, error.violations
    assert {v.partition("[")[0] for v in error.violations} == {
        "name",
        "slug",
        "description",
        "labels",
    }


def test_create_accepts_values_at_the_limits(api: Api) -> None:
    labels = {f"k{i}": "v" * 256 for i in range(64)}
    labels["a" + "b" * 62] = ""
    del labels["k0"]
    slug = ("s" + tag()).ljust(63, "x")
    organization = api.client().create_org(
        "n" * 200, slug=slug, description="d" * 2000, labels=labels
    )
    assert organization.name == "n" * 200
    assert organization.slug == slug
    assert len(organization.description) == 2000
    assert dict(organization.labels) == labels
