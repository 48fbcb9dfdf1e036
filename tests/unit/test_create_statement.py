"""The one-statement create on PostgreSQL: it stays within what psycopg caches the
parsing of (beyond either limit it converts the statement's placeholders again on every
create, about 0.1 ms of the service's CPU each), and the JSON document its organization
row is read from names every column (a missing one would be NULL, not its default)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH
from psycopg._queries import MAX_CACHED_STATEMENT_PARAMS
from sqlalchemy.dialects.postgresql.psycopg import dialect

from orgservice.domain.models import AuditEvent
from orgservice.domain.models import NewOrganization
from orgservice.storage.organization_creation import _CREATE_IN_ONE_STATEMENT
from orgservice.storage.organization_creation import _organization_values
from orgservice.storage.tables import organizations


def test_the_create_statement_is_short_enough_for_psycopg_to_cache_its_parsing() -> None:
    compiled = _CREATE_IN_ONE_STATEMENT.compile(dialect=dialect())  # type: ignore[no-untyped-call]
    assert len(str(compiled).encode()) <= MAX_CACHED_STATEMENT_LENGTH
    assert len(compiled.params) <= MAX_CACHED_STATEMENT_PARAMS


def test_the_organization_document_names_every_column_but_the_claimed_slug() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    new = NewOrganization(
        id="org",
        slugs=("acme",),
        name="Acme",
        description="",
        labels={},
        personal=False,
        owner_user_id="owner",
        workspace_id="workspace",
        create_time=now,
        created_event=AuditEvent(
            "event", "org", "owner", "created", "organization", "org", {}, now
        ),
    )
    assert set(_organization_values(new)) == set(organizations.c.keys()) - {"slug"}
