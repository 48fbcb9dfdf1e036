"""Data written straight into a migrated PostgreSQL database with COPY: organizations,
each with its slug, built-in roles and owner, as many as a benchmark needs in seconds.

`seed` gives the throughput benchmark a database of a realistic size, analyzed, as
pgbench initializes its tables before it measures: PostgreSQL plans a statement once per
connection and keeps the plan until the table's statistics change, so a database that
starts empty and grows by thousands of rows a second is measured under plans made for a
table of a few rows. The create is written so that such plans still probe the slug
index, and a user's many memberships are no longer scanned to find one
(tests/integration/test_query_plans.py); but a lookup by organization may still take any
index that starts with it until the first ANALYZE, and other statements are not checked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC
from datetime import datetime
from typing import Any

import psycopg

from orgservice.domain.models import OrganizationSettings
from orgservice.domain.permissions import BUILT_IN_ROLES
from orgservice.storage.organization_creation import settings_values
from orgservice.storage.startup import prepare_database
from orgservice.storage.tables import roles
from tests.support.pgbouncer import direct_conninfo

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_DEFAULT_SETTINGS = settings_values(OrganizationSettings())


def seed(url: str, organizations: int) -> None:
    """Migrates the database at `url`, writes `organizations` organizations (each with
    its own owner) and analyzes every table."""
    prepare_database(url)
    with psycopg.connect(direct_conninfo(url)) as connection:
        org_ids = [str(uuid.uuid4()) for _ in range(organizations)]
        subjects = [f"seed-owner-{index}" for index in range(organizations)]
        copy_organizations(connection, org_ids, subjects, {})
        connection.execute("ANALYZE")


def copy_organizations(
    connection: psycopg.Connection[Any],
    org_ids: list[str],
    owner_subjects: list[str],
    member_counts: dict[str, int],
) -> list[str]:
    """Organizations `org-<index>`, each owned by a new user of the subject at the same
    index; `member_counts` overrides the count of 1 (for members copied later). Returns
    the owners' user ids."""
    owner_ids = [str(uuid.uuid4()) for _ in org_ids]
    copy_users(connection, zip(owner_ids, owner_subjects, strict=True))
    copy_rows(
        connection,
        "organization_slugs",
        ("slug", "organization_id"),
        ((f"org-{index}", org) for index, org in enumerate(org_ids)),
    )
    copy_rows(
        connection,
        "organizations",
        (
            "id",
            "slug",
            "name",
            "description",
            "labels",
            "personal",
            "state",
            "version",
            "member_count",
            "workspace_count",
            "event_seq",
            *_DEFAULT_SETTINGS,
            "public_metadata",
            "private_metadata",
            "create_time",
            "update_time",
        ),
        (
            (
                org,
                f"org-{index}",
                f"Org {index}",
                "",
                "{}",
                False,
                "active",
                1,
                member_counts.get(org, 1),
                0,
                0,
                *_DEFAULT_SETTINGS.values(),
                "{}",
                "{}",
                EPOCH,
                EPOCH,
            )
            for index, org in enumerate(org_ids)
        ),
    )
    copy_rows(
        connection,
        "roles",
        tuple(roles.c.keys()),  # every column, in the table's order
        (
            (
                org,
                role.name,
                role.description,
                json.dumps(list(role.permissions)),
                True,
                EPOCH,
                EPOCH,
            )
            for org in org_ids
            for role in BUILT_IN_ROLES
        ),
    )
    copy_rows(
        connection,
        "memberships",
        ("organization_id", "user_id", "role", "create_time", "update_time"),
        (
            (org, owner, "owner", EPOCH, EPOCH)
            for org, owner in zip(org_ids, owner_ids, strict=True)
        ),
    )
    return owner_ids


def copy_users(connection: psycopg.Connection[Any], users: Iterable[tuple[str, str]]) -> None:
    """Users (id, subject) whose username is their subject."""
    copy_rows(
        connection,
        "users",
        (
            "id",
            "subject",
            "username",
            "email",
            "email_verified",
            "display_name",
            "create_time",
            "update_time",
        ),
        ((user_id, subject, subject, "", False, "", EPOCH, EPOCH) for user_id, subject in users),
    )


def copy_rows(
    connection: psycopg.Connection[Any], table: str, columns: tuple[str, ...], rows: Iterable[Any]
) -> None:
    with connection.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
