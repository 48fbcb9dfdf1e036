"""Test infrastructure the tests own: PostgreSQL clusters, PgBouncer, their fixtures."""
