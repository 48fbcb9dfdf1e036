"""The one-statement create on PostgreSQL stays within what psycopg caches the parsing
of: beyond either limit it converts the statement's placeholders again on every create
(about 0.1 ms of the service's CPU each)."""

from __future__ import annotations

from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH
from psycopg._queries import MAX_CACHED_STATEMENT_PARAMS
from sqlalchemy.dialects.postgresql.psycopg import dialect

from orgservice.storage.organization_creation import _CREATE_IN_ONE_STATEMENT


def test_the_create_statement_is_short_enough_for_psycopg_to_cache_its_parsing() -> None:
    compiled = _CREATE_IN_ONE_STATEMENT.compile(dialect=dialect())  # type: ignore[no-untyped-call]
    assert len(str(compiled).encode()) <= MAX_CACHED_STATEMENT_LENGTH
    assert len(compiled.params) <= MAX_CACHED_STATEMENT_PARAMS
