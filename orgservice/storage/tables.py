"""The schema, as SQLAlchemy Core tables.

Distribution-ready: every tenant table carries `organization_id` as the first column of
its primary key, and every unique key and foreign key between tenant tables includes it,
so the schema can be distributed by organization (docs/scaling.md). The global tables
(users, the slug and verified domain registries) hold what must be unique across
organizations.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import Column
from sqlalchemy import DateTime
from sqlalchemy import Dialect
from sqlalchemy import ForeignKey
from sqlalchemy import ForeignKeyConstraint
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import Interval
from sqlalchemy import MetaData
from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy import Text
from sqlalchemy import TypeDecorator
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB

ID = String(36)
SLUG = String(63)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDocument: Any = JSON().with_variant(JSONB(), "postgresql")


# psycopg reads and writes aware datetimes itself: the decorator's per-row work is
# needed on SQLite only.
TIMESTAMP: Any = UTCDateTime().with_variant(DateTime(timezone=True), "postgresql")


def _time(name: str, *, nullable: bool = False) -> Column[datetime]:
    return Column(name, TIMESTAMP, nullable=nullable)


def _where(condition: str) -> dict[str, Any]:
    """A partial index's condition, on both backends."""
    return {"sqlite_where": text(condition), "postgresql_where": text(condition)}


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# --- global tables ----------------------------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("subject", String(255), nullable=False, unique=True),
    Column("username", String(255), nullable=False, index=True),
    Column("email", String(320), nullable=False, index=True),
    Column("email_verified", Boolean, nullable=False),
    Column("display_name", String(255), nullable=False),
    _time("create_time"),
    _time("update_time"),
)

# Organization slugs are unique across organizations (deleted ones too, until purge).
organization_slugs = Table(
    "organization_slugs",
    metadata,
    Column("slug", SLUG, primary_key=True),
    Column("organization_id", ID, nullable=False, index=True),
)

# Verified domain names are unique across organizations (deleted ones too, until purge):
# the organization whose insert wins holds the name VERIFIED.
verified_domains = Table(
    "verified_domains",
    metadata,
    Column("name", String(253), primary_key=True),
    Column("organization_id", ID, nullable=False, index=True),
)

# The result of a create made with a caller-chosen request_id, kept for 24 hours.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", ID, ForeignKey("users.id"), primary_key=True),
    Column("request_id", ID, primary_key=True),
    Column("operation", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("resource_id", String(255), nullable=False),
    _time("create_time"),
    Index(None, "create_time"),
)

# --- tenant tables ----------------------------------------------------------------------

organizations = Table(
    "organizations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("slug", SLUG, nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("labels", JSONDocument, nullable=False),
    Column("personal", Boolean, nullable=False),
    Column("state", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    # Maintained in the transaction of every change, so reads are exact and O(1).
    Column("member_count", Integer, nullable=False),
    Column("workspace_count", Integer, nullable=False),
    # The sequence number of the organization's newest audit event.
    Column("event_seq", BigInteger, nullable=False),
    # Settings (membership policies).
    Column("auto_join_role", SLUG, nullable=False),
    Column("restrict_invitations_to_domains", Boolean, nullable=False),
    Column("max_members", Integer, nullable=False),
    Column("default_invitation_ttl", Interval, nullable=True),
    Column("public_metadata", JSONDocument, nullable=False),
    Column("private_metadata", JSONDocument, nullable=False),
    _time("create_time"),
    _time("update_time"),
    _time("delete_time", nullable=True),
    _time("purge_time", nullable=True),
    Index(None, "create_time", "id"),
    # Only deleted organizations have a purge time: an active one costs the index nothing.
    Index(None, "purge_time", **_where("purge_time IS NOT NULL")),
)


def _organization_key() -> Column[str]:
    return Column(
        "organization_id", ID, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )


roles = Table(
    "roles",
    metadata,
    _organization_key(),
    Column("name", SLUG, primary_key=True),
    Column("description", Text, nullable=False),
    Column("permissions", JSONDocument, nullable=False),
    Column("built_in", Boolean, nullable=False),
    _time("create_time"),
    _time("update_time"),
)

memberships = Table(
    "memberships",
    metadata,
    _organization_key(),
    Column("user_id", ID, ForeignKey("users.id"), primary_key=True),
    Column("role", SLUG, nullable=False),
    _time("create_time"),
    _time("update_time"),
    ForeignKeyConstraint(["organization_id", "role"], ["roles.organization_id", "roles.name"]),
    # A page of members, and of members in a role, in the list's order. The second starts
    # with the role so that no plan takes it to find one membership: from the two key
    # columns, only the primary key and the index below lead to one entry.
    Index(None, "organization_id", "create_time", "user_id"),
    Index(None, "role", "organization_id", "create_time", "user_id"),
    # A user's organizations, by both key columns. By user_id alone, a plan cached before
    # the table had statistics found one membership by scanning all of the user's (one
    # who creates organizations for others has thousands), and so did the foreign-key
    # check of each member search term (tests/integration/test_query_plans.py).
    Index(None, "user_id", "organization_id"),
)

# What ListMembers' `query` matches: the folded terms of each member (domain.search),
# kept in the transaction of every membership change and profile update. The index
# serves a prefix as a range of `term`; the membership's create_time rides along so
# that matches join back in the list's order. PostgreSQL compares with the "C"
# collation (code-point order, as SQLite and Python do), so a prefix is one range.
SEARCH_TERM: Any = String(320).with_variant(String(320, collation="C"), "postgresql")
member_search_terms = Table(
    "member_search_terms",
    metadata,
    Column("organization_id", ID, primary_key=True),
    Column("user_id", ID, primary_key=True),
    Column("term", SEARCH_TERM, primary_key=True),
    _time("create_time"),
    ForeignKeyConstraint(
        ["organization_id", "user_id"],
        ["memberships.organization_id", "memberships.user_id"],
        ondelete="CASCADE",
    ),
    Index(None, "organization_id", "term", "create_time", "user_id"),
)

workspaces = Table(
    "workspaces",
    metadata,
    _organization_key(),
    Column("id", ID, primary_key=True),
    Column("slug", SLUG, nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("version", Integer, nullable=False),
    _time("create_time"),
    _time("update_time"),
    Index(None, "organization_id", "slug", unique=True),
    Index(None, "organization_id", "create_time", "id"),
)

invitations = Table(
    "invitations",
    metadata,
    _organization_key(),
    Column("id", ID, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("role", SLUG, nullable=False),
    # Stored state; a "pending" row past expire_time reads as expired.
    Column("state", String(16), nullable=False),
    Column("inviter_user_id", ID, nullable=False),
    # SHA-256 of the token: the token itself is never stored. 256 random bits make a
    # collision impossible in practice, so no unique key (it could not include the
    # organization, which an accept by token does not know).
    Column("token_hash", String(64), nullable=False, index=True),
    _time("create_time"),
    _time("update_time"),
    _time("expire_time"),
    # At most one pending invitation per email and organization.
    Index(
        "uq_invitations_pending_email",
        "organization_id",
        "email",
        unique=True,
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
    Index(None, "organization_id", "create_time", "id"),
    Index(None, "email", "state"),
    Index(None, "id"),
)

audit_events = Table(
    "audit_events",
    metadata,
    _organization_key(),
    Column("id", ID, primary_key=True),
    # Per organization, assigned under the organization row lock: commit order.
    Column("seq", BigInteger, nullable=False),
    Column("actor_user_id", ID, nullable=False),
    Column("action", String(64), nullable=False),
    Column("target_type", String(32), nullable=False),
    Column("target_id", String(255), nullable=False),
    Column("details", JSONDocument, nullable=False),
    _time("create_time"),
    # The event's place in the feed of every organization (storage.feed), assigned
    # after commit; NULL until then.
    Column("feed_position", BigInteger, nullable=True),
    Index(None, "organization_id", "create_time", "id"),
    Index(None, "organization_id", "seq", unique=True),
    # Placed events only: a new event costs this index nothing until it is placed.
    Index(None, "feed_position", **_where("feed_position IS NOT NULL")),
    Index("ix_audit_events_unplaced", "organization_id", "seq", **_where("feed_position IS NULL")),
)

domains = Table(
    "domains",
    metadata,
    _organization_key(),
    Column("name", String(253), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("token", String(64), nullable=False),
    _time("create_time"),
    _time("verify_time", nullable=True),
)

# Who joined an organization through auto-join: they are never auto-joined again.
auto_joins = Table(
    "auto_joins",
    metadata,
    _organization_key(),
    Column("user_id", ID, ForeignKey("users.id"), primary_key=True),
    _time("create_time"),
)
