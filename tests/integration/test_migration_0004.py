"""Migration 0004 (domains, settings, metadata) on a database the previous release
filled: built at revision 0003, given organizations with members, roles, workspaces,
invitations and audit events the way release 1 wrote them, then upgraded the way
`orgservice serve` does. The data survives, the new columns hold their defaults, the
built-in roles gain the domain permissions, and a server works on the result. On SQLite
and PostgreSQL; the downgrade is checked too."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from google.protobuf.struct_pb2 import Struct
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from orgservice.storage import migrate
from orgservice.storage.database import create_database_engine
from orgservice.storage.tables import ID
from orgservice.storage.tables import JSONDocument
from orgservice.storage.tables import UTCDateTime
from orgservice.storage.tables import metadata
from tests.conftest import Api
from tests.conftest import failure
from tests.conftest import settings_for
from tests.conftest import start_api
from tests.support.migrations import migrate_to
from tests.support.migrations import plain_engine
from tests.support.permissions import CONTRACT_ROLES
from tests.support.permissions import DOMAIN_PERMISSIONS

Code = grpc.StatusCode

# Release 1's built-in roles: the contract's, before release 2 added the domain permissions.
RELEASE_1_ROLES = {
    role: [permission for permission in permissions if permission not in DOMAIN_PERMISSIONS]
    for role, permissions in CONTRACT_ROLES.items()
}
INVITATION_TOKEN = "release-1-invitation-token"


def _table(name: str, *columns: sa.ColumnClause[Any]) -> sa.TableClause:
    return sa.table(name, *columns)


def _text(*names: str) -> list[sa.ColumnClause[Any]]:
    return [sa.column(name, sa.String()) for name in names]


def _times(*names: str) -> list[sa.ColumnClause[Any]]:
    return [sa.column(name, UTCDateTime()) for name in names]


# The tables as revision 0003 has them (only what this test writes).
USERS = _table(
    "users",
    *_text("id", "subject", "username", "email", "display_name"),
    sa.column("email_verified", sa.Boolean()),
    *_times("create_time", "update_time"),
)
ORGANIZATIONS = _table(
    "organizations",
    *_text("id", "slug", "name", "description", "state"),
    sa.column("labels", JSONDocument),
    sa.column("personal", sa.Boolean()),
    *[sa.column(name, sa.Integer()) for name in ("version", "member_count", "workspace_count")],
    sa.column("event_seq", sa.BigInteger()),
    *_times("create_time", "update_time", "delete_time", "purge_time"),
)
SLUGS = _table("organization_slugs", *_text("slug", "organization_id"))
ROLES = _table(
    "roles",
    *_text("organization_id", "name", "description"),
    sa.column("permissions", JSONDocument),
    sa.column("built_in", sa.Boolean()),
    *_times("create_time", "update_time"),
)
MEMBERSHIPS = _table(
    "memberships",
    *_text("organization_id", "user_id", "role"),
    *_times("create_time", "update_time"),
)
WORKSPACES = _table(
    "workspaces",
    *_text("organization_id", "id", "slug", "name", "description"),
    sa.column("version", sa.Integer()),
    *_times("create_time", "update_time"),
)
INVITATIONS = _table(
    "invitations",
    *_text("organization_id", "id", "email", "role", "state", "inviter_user_id", "token_hash"),
    *_times("create_time", "update_time", "expire_time"),
)
AUDIT_EVENTS = _table(
    "audit_events",
    *_text("organization_id", "id", "actor_user_id", "action", "target_type", "target_id"),
    sa.column("seq", sa.BigInteger()),
    sa.column("details", JSONDocument),
    *_times("create_time"),
)


def release_1_data(url: str) -> dict[str, str]:
    """An organization with an owner, an admin, a viewer, a custom role, a workspace, a
    pending invitation and audit events, as release 1 wrote them. Returns ids."""
    now = datetime.now(UTC) - timedelta(days=1)
    ids = {name: str(uuid.uuid4()) for name in ("org", "alice", "bob", "carol", "invitation")}
    suffix = uuid.uuid4().hex[:8]
    ids["slug"] = f"acme-{suffix}"
    ids["erin"] = f"erin-{suffix}@example.com"
    times = {"create_time": now, "update_time": now}
    rows: list[tuple[sa.TableClause, list[dict[str, Any]]]] = [
        (
            USERS,
            [
                {
                    "id": ids[name],
                    "subject": f"{name}-{suffix}",
                    "username": name,
                    "email": f"{name}-{suffix}@example.com",
                    "email_verified": True,
                    "display_name": name.title(),
                    **times,
                }
                for name in ("alice", "bob", "carol")
            ],
        ),
        (
            ORGANIZATIONS,
            [
                {
                    "id": ids["org"],
                    "slug": ids["slug"],
                    "name": "Acme",
                    "description": "made by release 1",
                    "state": "active",
                    "labels": {"tier": "gold"},
                    "personal": False,
                    "version": 3,
                    "member_count": 3,
                    "workspace_count": 1,
                    "event_seq": 2,
                    "delete_time": None,
                    "purge_time": None,
                    **times,
                }
            ],
        ),
        (SLUGS, [{"slug": ids["slug"], "organization_id": ids["org"]}]),
        (
            ROLES,
            [
                {
                    "organization_id": ids["org"],
                    "name": name,
                    "description": f"the {name}",
                    "permissions": permissions,
                    "built_in": True,
                    **times,
                }
                for name, permissions in RELEASE_1_ROLES.items()
            ]
            + [
                {
                    "organization_id": ids["org"],
                    "name": "auditor",
                    "description": "reads the audit log",
                    "permissions": ["organizations.get", "audit.list"],
                    "built_in": False,
                    **times,
                }
            ],
        ),
        (
            MEMBERSHIPS,
            [
                {"organization_id": ids["org"], "user_id": ids[name], "role": role, **times}
                for name, role in (("alice", "owner"), ("bob", "admin"), ("carol", "viewer"))
            ],
        ),
        (
            WORKSPACES,
            [
                {
                    "organization_id": ids["org"],
                    "id": str(uuid.uuid4()),
                    "slug": "default",
                    "name": "Default",
                    "description": "",
                    "version": 1,
                    **times,
                }
            ],
        ),
        (
            INVITATIONS,
            [
                {
                    "organization_id": ids["org"],
                    "id": ids["invitation"],
                    "email": ids["erin"],
                    "role": "auditor",
                    "state": "pending",
                    "inviter_user_id": ids["alice"],
                    "token_hash": hashlib.sha256(INVITATION_TOKEN.encode()).hexdigest(),
                    "expire_time": now + timedelta(days=7),
                    **times,
                }
            ],
        ),
        (
            AUDIT_EVENTS,
            [
                {
                    "organization_id": ids["org"],
                    "id": str(uuid.uuid4()),
                    "actor_user_id": ids["alice"],
                    "action": action,
                    "target_type": "organization",
                    "target_id": ids["org"],
                    "seq": seq,
                    "details": {},
                    "create_time": now,
                }
                for seq, action in ((1, "organization.created"), (2, "invitation.created"))
            ],
        ),
    ]
    with plain_engine(url) as engine, engine.begin() as connection:
        for table, values in rows:
            connection.execute(sa.insert(table), values)
    return ids


def stored(url: str, query: str, **values: Any) -> list[dict[str, Any]]:
    with plain_engine(url) as engine, engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(sa.text(query), values)]


def role_permissions(url: str, organization_id: str) -> dict[str, set[str]]:
    roles = sa.table(
        "roles",
        sa.column("organization_id", ID),
        sa.column("name", sa.String()),
        sa.column("permissions", JSONDocument),
    )
    with plain_engine(url) as engine, engine.connect() as connection:
        rows = connection.execute(
            sa.select(roles.c.name, roles.c.permissions).where(
                roles.c.organization_id == organization_id
            )
        )
        return {name: set(permissions) for name, permissions in rows}


@contextmanager
def server_on(url: str, dev_key_file: Path) -> Iterator[Api]:
    running = start_api(settings_for(url, dev_key_file))
    try:
        yield next(running)
    finally:
        running.close()


def test_upgrade_keeps_release_1_data_and_adds_the_defaults(
    empty_database: str, dev_key_file: Path
) -> None:
    url = empty_database
    migrate_to(url, "0003")
    ids = release_1_data(url)

    engine = create_database_engine(url)
    try:
        migrate.upgrade(engine)  # what `orgservice serve` and `orgservice migrate` run
        assert migrate.is_up_to_date(engine)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        engine.dispose()

    (organization,) = stored(url, "SELECT * FROM organizations WHERE id = :id", id=ids["org"])
    assert (organization["auto_join_role"], organization["max_members"]) == ("", 0)
    assert not organization["restrict_invitations_to_domains"]
    assert organization["default_invitation_ttl"] is None
    assert (organization["member_count"], organization["version"]) == (3, 3)
    permissions = role_permissions(url, ids["org"])
    assert permissions["owner"] == set(RELEASE_1_ROLES["owner"]) | DOMAIN_PERMISSIONS
    assert permissions["admin"] == set(RELEASE_1_ROLES["admin"]) | DOMAIN_PERMISSIONS
    assert permissions["developer"] == set(RELEASE_1_ROLES["developer"])
    assert permissions["viewer"] == set(RELEASE_1_ROLES["viewer"])
    assert permissions["auditor"] == {"organizations.get", "audit.list"}  # custom: untouched
    assert stored(url, "SELECT count(*) AS n FROM domains")[0]["n"] == 0

    with server_on(url, dev_key_file) as api:
        alice = api.client(f"alice-{ids['slug'].removeprefix('acme-')}")
        bob = api.client(f"bob-{ids['slug'].removeprefix('acme-')}")
        got = alice.GetOrganization(rpc.GetOrganizationRequest(slug=ids["slug"])).organization
        assert (got.id, got.name, dict(got.labels), got.member_count) == (
            ids["org"],
            "Acme",
            {"tier": "gold"},
            3,
        )
        assert got.settings == pb.OrganizationSettings()
        assert (got.public_metadata, got.private_metadata) == (Struct(), Struct())
        # The admin holds the new permissions through the migrated built-in role.
        domain = bob.CreateDomain(
            rpc.CreateDomainRequest(organization_id=ids["org"], name=f"{ids['slug']}.example")
        ).domain
        assert domain.state == pb.DOMAIN_STATE_PENDING
        # Release 1's invitation still works, and the new member limit applies to it.
        alice.UpdateOrganization(
            rpc.UpdateOrganizationRequest(
                organization=pb.Organization(
                    id=ids["org"], settings=pb.OrganizationSettings(max_members=3)
                ),
                update_mask={"paths": ["settings.max_members"]},
            )
        )
        erin = api.client(email=ids["erin"], email_verified=True)
        accept = rpc.AcceptInvitationRequest(token=INVITATION_TOKEN)
        full = failure(lambda: erin.AcceptInvitation(accept))
        assert (full.code, full.reason) == (Code.FAILED_PRECONDITION, "MEMBER_LIMIT_REACHED")
        alice.UpdateOrganization(
            rpc.UpdateOrganizationRequest(
                organization=pb.Organization(id=ids["org"]), update_mask={"paths": ["settings"]}
            )
        )
        assert erin.AcceptInvitation(accept).member.role == "auditor"
        events = alice.ListAuditEvents(rpc.ListAuditEventsRequest(organization_id=ids["org"]))
        actions = [event.action for event in events.events]
        assert actions[0] == "invitation.accepted"
        assert sorted(actions[-2:]) == ["invitation.created", "organization.created"]


def test_downgrade_to_0003_restores_the_previous_schema(empty_database: str) -> None:
    url = empty_database
    migrate_to(url, "0003")
    ids = release_1_data(url)
    migrate_to(url, "head")
    migrate_to(url, "0003", down=True)
    permissions = role_permissions(url, ids["org"])
    assert {name: permissions[name] for name in RELEASE_1_ROLES} == {
        name: set(listed) for name, listed in RELEASE_1_ROLES.items()
    }
    with plain_engine(url) as engine:
        inspector = sa.inspect(engine)
        assert not {"domains", "verified_domains", "auto_joins"} & set(inspector.get_table_names())
        columns = {column["name"] for column in inspector.get_columns("organizations")}
        assert "max_members" not in columns
    migrate_to(url, "head")  # and up again
