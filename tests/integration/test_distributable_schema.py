"""The schema can be distributed by organization (docs/scaling.md): read from the catalog
of a migrated PostgreSQL database, not from tables.py, so that whatever the migrations
really build is checked.

The rules are those of a sharded PostgreSQL such as Citus, with `organizations`
distributed by `id` and every other tenant table co-located with it by
`organization_id`:
- every table is either a tenant table or one of GLOBAL_TABLES (replicated to every
  node); a tenant table has `organization_id` (`organizations` has `id`), of one type;
- a tenant table's primary key, unique constraints, unique indexes and exclusion
  constraints include that column, since uniqueness can only be enforced within a shard;
- a foreign key between tenant tables matches that column to that column, so both rows
  live in the same shard; a global table never references a tenant table (a replicated
  row cannot point into one shard). Tenant tables may reference global ones.

A new table breaks the build until it follows the rules or joins GLOBAL_TABLES with the
reason it must be global; the bad-schema cases below prove the checker catches each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from orgservice.storage.startup import prepare_database
from tests.conftest import new_postgres_database
from tests.conftest import require_postgres_tests
from tests.support.pgbouncer import direct_url_for

pytestmark = pytest.mark.postgres_only

# The global tables, each with why it cannot be split by organization. Keep this the
# only list of them (docs/scaling.md points here).
GLOBAL_TABLES = {
    # A user belongs to many organizations (or none); users are looked up by token
    # subject, id, username and email, never within one organization.
    "users": "a person across organizations",
    # Slugs are unique across all organizations: the claim of a slug must see every
    # organization's, and a lookup by slug does not know the organization yet.
    "organization_slugs": "registry of slugs unique across organizations",
    # Likewise verified domain names: one organization at a time may hold a name
    # VERIFIED, and auto-join looks a name up by a user's email, before it knows the
    # organization. (Claims, verified or not, live in the tenant table `domains`.)
    "verified_domains": "registry of verified domain names unique across organizations",
    # Keyed by (user_id, request_id): a retried create may be for an organization that
    # does not exist yet (CreateOrganization), so the key cannot name one. Sharded by
    # user_id on its own rather than replicated (docs/scaling.md).
    "idempotency_keys": "request_ids are per user, before any organization exists",
    # Alembic's own bookkeeping: one row for the whole database.
    "alembic_version": "the schema's migration revision",
}
ROOT_TABLE = "organizations"  # distributed by its own id
ROOT_COLUMN = "id"
TENANT_COLUMN = "organization_id"


def distribution_column(table: str) -> str:
    return ROOT_COLUMN if table == ROOT_TABLE else TENANT_COLUMN


# -- the live schema ------------------------------------------------------------------------

_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
"""
_COLUMN_TYPES = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped
"""
# Primary keys, unique constraints and unique indexes are all unique indexes; exclusion
# constraints too need the distribution column. Key columns only (not INCLUDE ones); an
# expression contributes no column.
_UNIQUE_INDEXES = """
SELECT t.relname, i.relname, ix.indisprimary,
       ARRAY(SELECT a.attname
             FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, position)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
             WHERE k.position <= ix.indnkeyatts ORDER BY k.position)
FROM pg_index ix
JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = current_schema() AND (ix.indisunique OR ix.indisexclusion)
"""
_FOREIGN_KEYS = """
SELECT c.conname, src.relname, dst.relname,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, position)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             ORDER BY k.position),
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, position)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
             ORDER BY k.position)
FROM pg_constraint c
JOIN pg_class src ON src.oid = c.conrelid
JOIN pg_class dst ON dst.oid = c.confrelid
JOIN pg_namespace n ON n.oid = src.relnamespace
WHERE n.nspname = current_schema() AND c.contype = 'f'
"""


@dataclass(frozen=True)
class Schema:
    tables: set[str]
    column_types: dict[tuple[str, str], str]  # (table, column) -> type
    unique_indexes: list[tuple[str, str, bool, list[str]]]  # table, index, primary, columns
    foreign_keys: list[tuple[str, str, str, list[str], list[str]]]  # name, from, to, columns

    @classmethod
    def read(cls, conn: psycopg.Connection[Any]) -> Schema:
        return cls(
            tables={row[0] for row in conn.execute(_TABLES)},
            column_types={(t, c): kind for t, c, kind in conn.execute(_COLUMN_TYPES)},
            unique_indexes=[tuple(row) for row in conn.execute(_UNIQUE_INDEXES)],
            foreign_keys=[tuple(row) for row in conn.execute(_FOREIGN_KEYS)],
        )

    @property
    def tenant_tables(self) -> set[str]:
        return self.tables - set(GLOBAL_TABLES)


def problems_of(schema: Schema) -> list[str]:
    """Everything that keeps the schema from being distributed by organization."""
    problems = [
        f"GLOBAL_TABLES names {name}, which the schema does not have"
        for name in sorted(set(GLOBAL_TABLES) - schema.tables)
    ]
    types: dict[str, str] = {}
    for table in sorted(schema.tenant_tables):
        column = distribution_column(table)
        kind = schema.column_types.get((table, column))
        if kind is None:
            problems.append(
                f"{table}: no {column} column (a tenant table needs it; a table that must "
                "be global goes into GLOBAL_TABLES with the reason)"
            )
        else:
            types[f"{table}.{column}"] = kind
        if not any(table == t and primary for t, _, primary, _ in schema.unique_indexes):
            problems.append(f"{table}: no primary key")
    if len(set(types.values())) > 1:
        problems.append(f"the distribution columns differ in type: {types}")
    for table, index, primary, columns in schema.unique_indexes:
        column = distribution_column(table)
        if table in schema.tenant_tables and column not in columns:
            what = "primary key" if primary else "unique index or constraint"
            problems.append(f"{table}: {what} {index} {columns} lacks {column}")
    for name, source, target, columns, referenced in schema.foreign_keys:
        source_is_tenant = source in schema.tenant_tables
        if target not in schema.tenant_tables:
            continue  # into a global (replicated) table: fine from anywhere
        if not source_is_tenant:
            problems.append(f"{source}: foreign key {name} from a global table into {target}")
        elif (distribution_column(source), distribution_column(target)) not in zip(
            columns, referenced, strict=True
        ):
            problems.append(
                f"{source}: foreign key {name} {columns} -> {target} {referenced} does not "
                f"match {distribution_column(source)} to {target}.{distribution_column(target)}"
            )
    return problems


# -- the tests ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated() -> Iterator[str]:
    """libpq conninfo of a new, migrated database (direct, never through PgBouncer)."""
    require_postgres_tests()
    with new_postgres_database() as url:
        direct = direct_url_for(url)
        prepare_database(direct)
        yield direct.replace("postgresql+psycopg://", "postgresql://", 1)


def problems_with(conninfo: str, ddl: str = "") -> list[str]:
    """The schema's problems after `ddl`, which is rolled back afterwards."""
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction(force_rollback=True):
        if ddl:
            conn.execute(ddl)
        return problems_of(Schema.read(conn))


def test_the_migrated_schema_is_distributable(migrated: str) -> None:
    with psycopg.connect(migrated) as conn:
        schema = Schema.read(conn)
    # Not vacuous: the checker sees the tenant tables and their keys.
    assert {ROOT_TABLE, "memberships", "roles", "invitations"} <= schema.tenant_tables
    assert len(schema.foreign_keys) >= len(schema.tenant_tables) - 1
    problems = problems_of(schema)
    assert not problems, "the schema cannot be distributed by organization:\n" + "\n".join(problems)


def test_a_well_formed_tenant_table_passes(migrated: str) -> None:
    ddl = """
    CREATE TABLE notes (
        organization_id varchar(36) NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        id varchar(36) NOT NULL,
        workspace_id varchar(36) NOT NULL,
        author_id varchar(36) NOT NULL REFERENCES users (id),
        PRIMARY KEY (organization_id, id),
        FOREIGN KEY (organization_id, workspace_id) REFERENCES workspaces (organization_id, id)
    );
    CREATE UNIQUE INDEX ON notes (organization_id, author_id, workspace_id)
    """
    assert problems_with(migrated, ddl) == []


@dataclass(frozen=True)
class Bad:
    name: str
    ddl: str
    problem: str  # a fragment of the problem the checker must report

    def __str__(self) -> str:
        return self.name


BAD_SCHEMAS = [
    Bad(
        "new-table-without-organization-id",
        "CREATE TABLE notes (id varchar(36) PRIMARY KEY)",
        "notes: no organization_id column",
    ),
    Bad(
        "primary-key-without-organization-id",
        "CREATE TABLE notes (organization_id varchar(36) NOT NULL REFERENCES organizations (id),"
        " id varchar(36) PRIMARY KEY)",
        "notes: primary key notes_pkey ['id'] lacks organization_id",
    ),
    Bad(
        "no-primary-key",
        "CREATE TABLE notes (organization_id varchar(36) NOT NULL REFERENCES organizations (id))",
        "notes: no primary key",
    ),
    Bad(
        "unique-constraint-without-organization-id",
        "ALTER TABLE workspaces ADD CONSTRAINT uq_workspaces_slug_only UNIQUE (slug)",
        "workspaces: unique index or constraint uq_workspaces_slug_only ['slug'] lacks",
    ),
    Bad(
        "unique-index-without-organization-id",
        "CREATE UNIQUE INDEX ix_token_hash_unique ON invitations (token_hash)",
        "invitations: unique index or constraint ix_token_hash_unique",
    ),
    Bad(
        "unique-index-with-organization-id-only-included",
        "CREATE UNIQUE INDEX ix_token_included ON invitations (token_hash)"
        " INCLUDE (organization_id)",
        "invitations: unique index or constraint ix_token_included",
    ),
    Bad(
        "foreign-key-into-organizations-by-another-column",
        "CREATE TABLE notes (organization_id varchar(36) NOT NULL, id varchar(36) NOT NULL,"
        " about varchar(36) REFERENCES organizations (id), PRIMARY KEY (organization_id, id))",
        "does not match organization_id to organizations.id",
    ),
    Bad(
        "foreign-key-matching-organization-id-to-another-column",
        "CREATE TABLE notes (organization_id varchar(36) NOT NULL,"
        " workspace_id varchar(36) NOT NULL, PRIMARY KEY (organization_id, workspace_id),"
        " FOREIGN KEY (workspace_id, organization_id) REFERENCES workspaces (organization_id, id))",
        "does not match organization_id to workspaces.organization_id",
    ),
    Bad(
        "global-table-referencing-a-tenant-table",
        "ALTER TABLE organization_slugs ADD FOREIGN KEY (organization_id)"
        " REFERENCES organizations (id)",
        "organization_slugs: foreign key",
    ),
    Bad(
        "distribution-column-of-another-type",
        "CREATE TABLE notes (organization_id uuid NOT NULL, id uuid NOT NULL,"
        " PRIMARY KEY (organization_id, id))",
        "the distribution columns differ in type",
    ),
    Bad(
        "global-table-renamed",
        "ALTER TABLE idempotency_keys RENAME TO request_ids",
        "GLOBAL_TABLES names idempotency_keys, which the schema does not have",
    ),
]


@pytest.mark.parametrize("bad", BAD_SCHEMAS, ids=str)
def test_the_checker_catches_a_table_that_breaks_the_rules(migrated: str, bad: Bad) -> None:
    problems = problems_with(migrated, bad.ddl)
    assert any(bad.problem in problem for problem in problems), problems
