"""What PostgreSQL plans for hot statements, on a new database and once tables have grown:
the plan a pooled connection caches for a prepared statement must not scan a table that
grows with every organization."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.psycopg import dialect

from orgservice.storage.database import EngineOptions
from orgservice.storage.database import create_database_engine
from orgservice.storage.organization_creation import _CREATE_IN_ONE_STATEMENT
from orgservice.storage.startup import prepare_database
from tests.conftest import new_postgres_database
from tests.conftest import require_postgres_tests
from tests.support.pgbouncer import direct_url_for


@pytest.fixture(
    params=[
        pytest.param((5_000, True), id="grown-and-analyzed"),
        # Before autovacuum first analyzes the table: the plan cached then stays cached.
        pytest.param((10, False), id="new-without-statistics"),
    ]
)
def slugs_table(request: pytest.FixtureRequest) -> Iterator[Connection]:
    """A transaction on a new database holding a number of organization slugs, analyzed
    or not."""
    slugs, analyzed = request.param
    require_postgres_tests()
    with new_postgres_database() as pooled:
        url = direct_url_for(pooled)  # SET LOCAL and ANALYZE, not through a pooler
        prepare_database(url, wait_seconds=5)
        engine = create_database_engine(url, EngineOptions(pool_size=1))
        try:
            with engine.begin() as conn:
                # Slugs alone, without their organizations: no foreign-key triggers.
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                conn.execute(
                    text(
                        "INSERT INTO organization_slugs (slug, organization_id) "
                        "SELECT 'taken-' || n, 'org-' || n FROM generate_series(1, :count) n"
                    ),
                    {"count": slugs},
                )
                if analyzed:
                    conn.execute(text("ANALYZE organization_slugs"))
                conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
                yield conn
        finally:
            engine.dispose()


def test_a_create_looks_its_candidate_slugs_up_in_the_index(slugs_table: Connection) -> None:
    # The plan a pooled connection caches once psycopg prepares the statement.
    numbered = dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
    compiled = _CREATE_IN_ONE_STATEMENT.compile(dialect=numbered)
    parameters = ", ".join(["NULL"] * len(compiled.positiontup or ()))
    slugs_table.execute(text(f"PREPARE create_organization AS {compiled}"))
    plan = "\n".join(
        slugs_table.execute(text(f"EXPLAIN EXECUTE create_organization({parameters})")).scalars()
    )

    assert "Seq Scan on organization_slugs" not in plan, plan
    assert "using pk_organization_slugs on organization_slugs" in plan, plan
