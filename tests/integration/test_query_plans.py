"""What PostgreSQL plans for hot statements, on a new database and once tables have grown:
the plan a pooled connection caches for a prepared statement must not scan a table that
grows with every organization, nor every membership of a user.

Plans are the generic ones (`plan_cache_mode = force_generic_plan`): what a pooled
connection caches once psycopg prepares a statement, and what PostgreSQL caches for the
queries of its foreign-key checks. A plan cached before the first ANALYZE (a new
database) stays cached until the table is analyzed, so both states are tried.

Partial indexes serve only statements whose condition implies the index's: those are
checked on both backends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import ClauseElement
from sqlalchemy import Connection
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.psycopg import dialect

from orgservice.storage.database import EngineOptions
from orgservice.storage.database import create_database_engine
from orgservice.storage.feed import AFTER_POSITION
from orgservice.storage.feed import NEWEST_POSITION
from orgservice.storage.memberships import _ACCESS_LOCKED
from orgservice.storage.memberships import _MEMBER
from orgservice.storage.memberships import _PAGES
from orgservice.storage.memberships import _SEEN_BY
from orgservice.storage.organization_creation import _CREATE_IN_ONE_STATEMENT
from orgservice.storage.retention import DUE_FOR_PURGE
from orgservice.storage.startup import prepare_database
from tests.conftest import new_postgres_database
from tests.conftest import require_postgres_tests
from tests.support.pgbouncer import direct_url_for

# A table's rows and whether it was analyzed: grown, or new (no statistics yet).
STATES = [
    pytest.param((5_000, True), id="grown-and-analyzed"),
    pytest.param((10, False), id="new-without-statistics"),
]
# What PostgreSQL runs for the foreign key of each member search term (and of nothing
# else on memberships): the check a create makes once per term of its owner.
MEMBERSHIP_KEY_CHECK = (
    "SELECT 1 FROM ONLY memberships x WHERE organization_id = $1 AND user_id = $2"
    " FOR KEY SHARE OF x"
)


@pytest.fixture
def new_database() -> Iterator[Connection]:
    """A transaction on a new database, rows inserted without their foreign keys."""
    require_postgres_tests()
    with new_postgres_database() as pooled:
        url = direct_url_for(pooled)  # SET LOCAL and ANALYZE, not through a pooler
        prepare_database(url, wait_seconds=5)
        engine = create_database_engine(url, EngineOptions(pool_size=1))
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("BEGIN")  # the engine autocommits
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
                yield conn
                conn.exec_driver_sql("ROLLBACK")
        finally:
            engine.dispose()


def generic_plan(conn: Connection, name: str, statement: ClauseElement | str) -> str:
    """The plan of `statement` prepared as `name`, for NULL parameters."""
    if isinstance(statement, str):
        sql, parameters = statement, len(set(re.findall(r"\$\d+", statement)))
    else:
        numbered = dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
        compiled = statement.compile(dialect=numbered)
        sql, parameters = str(compiled), len(compiled.positiontup or ())
    conn.execute(text(f"PREPARE {name} AS {sql}"))
    nulls = f"({', '.join(['NULL'] * parameters)})" if parameters else ""
    return "\n".join(conn.execute(text(f"EXPLAIN EXECUTE {name}{nulls}")).scalars())


@pytest.mark.parametrize("size", STATES)
def test_a_create_looks_its_candidate_slugs_up_in_the_index(
    new_database: Connection, size: tuple[int, bool]
) -> None:
    fill(
        new_database,
        "organization_slugs",
        "(slug, organization_id) SELECT 'taken-' || n, 'org-' || n"
        " FROM generate_series(1, :count) n",
        size,
    )

    plan = generic_plan(new_database, "create_organization", _CREATE_IN_ONE_STATEMENT)

    assert "Seq Scan on organization_slugs" not in plan, plan
    assert "using pk_organization_slugs on organization_slugs" in plan, plan


# Memberships, `count` of them, crowding one key column: one user's in as many
# organizations (one who creates organizations for others owns them all), or one
# organization's members beside as many organizations of one member each.
LAYOUTS = {
    "user_id": "SELECT 'org-' || n, 'prolific', 'owner' FROM generate_series(1, :count) n",
    "organization_id": (
        "SELECT 'big', 'member-' || n, 'viewer' FROM generate_series(1, :count) n"
        " UNION ALL SELECT 'org-' || n, 'member-' || n, 'owner'"
        " FROM generate_series(1, :count) n"
    ),
}
LOOKUP_CASES = [
    pytest.param("user_id", size.values[0], id=f"one-user-in-many-organizations-{size.id}")
    for size in STATES
] + [
    # A new database has no organization that large: before statistics, every lookup by
    # organization is estimated at one row, and the plan may take any index that starts
    # with it. Statistics tell them apart (the primary key is then the one exact probe).
    pytest.param("organization_id", STATES[0].values[0], id="one-large-organization")
]
KEY_COLUMNS = {"organization_id", "user_id"}
_INDEX_COLUMNS = text(
    "SELECT array_agg(a.attname::text ORDER BY k.position) FROM pg_index i"
    " JOIN pg_class c ON c.oid = i.indexrelid"
    " CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)"
    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
    " WHERE c.relname = :name"
)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(MEMBERSHIP_KEY_CHECK, id="foreign-key-check"),
        pytest.param(_SEEN_BY, id="organization-seen-by"),
        pytest.param(_ACCESS_LOCKED, id="access-locked"),
        pytest.param(_MEMBER, id="member"),
    ],
)
@pytest.mark.parametrize(("crowded", "size"), LOOKUP_CASES)
def test_one_membership_is_never_found_by_scanning_a_crowded_key(
    new_database: Connection, statement: ClauseElement | str, crowded: str, size: tuple[int, bool]
) -> None:
    """A generic plan has no organization or user in mind: it must not walk all the
    memberships of a user, nor all the members of an organization, to find one."""
    insert_memberships(new_database, crowded, size)

    plan = generic_plan(new_database, "membership", statement)

    indexes = re.findall(r"Scan using (\w+) on memberships", plan)
    assert indexes, plan  # each statement reads memberships once: not sequentially
    for index in indexes:
        leading = new_database.execute(_INDEX_COLUMNS, {"name": index}).scalar_one()[:2]
        if set(leading) != KEY_COLUMNS:  # else a probe of one entry
            assert leading[0] in KEY_COLUMNS - {crowded}, (index, plan)


@pytest.mark.parametrize("statement", [_SEEN_BY, _ACCESS_LOCKED], ids=["seen-by", "access-locked"])
@pytest.mark.parametrize("size", STATES)
def test_the_members_role_is_looked_up_by_organization_and_name(
    new_database: Connection, statement: ClauseElement, size: tuple[int, bool]
) -> None:
    """An organization may define any number of roles: finding the member's must not
    read them all."""
    fill(
        new_database,
        "roles",
        "(organization_id, name, description, permissions, built_in, create_time,"
        " update_time) SELECT 'big', 'role-' || n, '', '[]', false, now(), now()"
        " FROM generate_series(1, :count) n",
        size,
    )

    plan = generic_plan(new_database, "access", statement)

    lines = plan.splitlines()
    scans = [n for n, line in enumerate(lines) if " on roles" in line]
    assert scans, plan
    for n in scans:
        condition = lines[n + 1]
        assert "Index Cond" in condition, plan
        assert "name" in condition, plan


@pytest.mark.parametrize("page", ["first", "next"])
@pytest.mark.parametrize("size", STATES)
def test_a_page_of_the_members_in_a_role_is_read_in_order(
    new_database: Connection, size: tuple[int, bool], page: str
) -> None:
    insert_memberships(new_database, "organization_id", size)

    plan = generic_plan(new_database, "members_in_role", getattr(_PAGES[True], f"_{page}"))

    assert "Sort" not in plan, plan
    assert "ix_memberships_role_organization_id_create_time_user_id" in plan, plan


# Statements that read an index holding only the rows where its column is set.
PARTIAL_INDEX_READS = [
    pytest.param(DUE_FOR_PURGE, "ix_organizations_purge_time", id="due-for-purge"),
    pytest.param(NEWEST_POSITION, "ix_audit_events_feed_position", id="newest-feed-position"),
    pytest.param(AFTER_POSITION, "ix_audit_events_feed_position", id="after-feed-position"),
]


@pytest.mark.parametrize(("statement", "index"), PARTIAL_INDEX_READS)
def test_postgresql_reads_the_partial_indexes(
    new_database: Connection, statement: ClauseElement, index: str
) -> None:
    new_database.exec_driver_sql("SET LOCAL enable_seqscan = off")  # else empty tables

    plan = generic_plan(new_database, "partial", statement)

    assert f"using {index}" in plan, plan


@pytest.mark.parametrize(("statement", "index"), PARTIAL_INDEX_READS)
def test_sqlite_reads_the_partial_indexes(
    tmp_path: Path, statement: ClauseElement, index: str
) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    prepare_database(url, wait_seconds=5)
    engine = create_database_engine(url)
    try:
        compiled = statement.compile(dialect=engine.dialect)
        nulls = tuple(None for _ in compiled.positiontup or ())
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", nulls).all()
    finally:
        engine.dispose()

    assert any(f"INDEX {index}" in row.detail for row in plan), plan


def insert_memberships(conn: Connection, crowded: str, size: tuple[int, bool]) -> None:
    fill(
        conn,
        "memberships",
        "(organization_id, user_id, role, create_time, update_time)"
        f" SELECT *, now(), now() FROM ({LAYOUTS[crowded]}) AS given",
        size,
    )


def fill(conn: Connection, table: str, rows: str, size: tuple[int, bool]) -> None:
    """Inserts `rows` (the column list and a SELECT of `:count` rows) into `table`, and
    analyzes it if `size` says so."""
    count, analyzed = size
    conn.execute(text(f"INSERT INTO {table} {rows}"), {"count": count})
    if analyzed:
        conn.execute(text(f"ANALYZE {table}"))
