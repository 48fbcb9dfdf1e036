"""Member search at scale: a prefix query in an organization of 100,000 members against
the same query in one of 100, on one database behind a real in-process server.

The members are loaded in bulk (COPY on PostgreSQL) straight into the tables, with the
search terms the service would write; the queries go through gRPC. `compare()` is the
entry point for other scripts (`make bench-scale`) and tests.

    python -m benchmarks.member_search postgresql+psycopg://postgres@127.0.0.1:5432/DB
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc
from sqlalchemy import Engine
from sqlalchemy import Table
from sqlalchemy import insert
from sqlalchemy import update

from orgservice import devkeys
from orgservice.config import Settings
from orgservice.server import OrgServer
from orgservice.storage.database import create_database_engine
from orgservice.storage.member_search import term_rows
from orgservice.storage.startup import prepare_database
from orgservice.storage.tables import member_search_terms
from orgservice.storage.tables import memberships
from orgservice.storage.tables import organizations
from orgservice.storage.tables import users

FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen")


@dataclass(frozen=True)
class SearchTiming:
    members: int  # in the organization searched
    query: str
    matches: int
    median_seconds: float


def username(tag: str, index: int) -> str:
    return f"{tag}-{index:06d}"


def load_members(engine: Engine, organization_id: str, count: int, tag: str) -> None:
    """Adds `count` new users to the organization as viewers, with their search terms,
    and updates its member count. Usernames are `username(tag, i)`."""
    start = datetime.now(UTC)
    user_rows, member_rows, term_rows_ = [], [], []
    for index in range(count):
        user_id = str(uuid.uuid4())
        joined = start + timedelta(microseconds=index)
        name = f"{FIRST_NAMES[index % len(FIRST_NAMES)]} {LAST_NAMES[index % len(LAST_NAMES)]}"
        profile = (username(tag, index), f"{username(tag, index)}@example.com", name)
        user_rows.append(
            {
                "id": user_id,
                "subject": f"bench-{tag}-{index}",
                "username": profile[0],
                "email": profile[1],
                "email_verified": True,
                "display_name": profile[2],
                "create_time": joined,
                "update_time": joined,
            }
        )
        member_rows.append(
            {
                "organization_id": organization_id,
                "user_id": user_id,
                "role": "viewer",
                "create_time": joined,
                "update_time": joined,
            }
        )
        term_rows_.extend(term_rows(organization_id, user_id, joined, profile))
    with engine.begin() as connection:
        for table, rows in ((users, user_rows), (memberships, member_rows)):
            _bulk_insert(connection, table, rows)
        _bulk_insert(connection, member_search_terms, term_rows_)
        connection.execute(
            update(organizations)
            .where(organizations.c.id == organization_id)
            .values(member_count=organizations.c.member_count + count)
        )
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE users, memberships, member_search_terms")


def _bulk_insert(connection: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    columns = [column.name for column in table.columns]
    cursor = connection.connection.dbapi_connection.cursor()
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[name] for name in columns])


@dataclass(frozen=True)
class Search:
    """One organization and the query to time in it."""

    organization_id: str
    members: int
    query: str


def time_searches(
    stub: rpc_grpc.OrganizationServiceStub,
    metadata: tuple[tuple[str, str], ...],
    searches: list[Search],
    *,
    rounds: int,
) -> list[SearchTiming]:
    """The median time of a first page of ListMembers(query) for each search, the calls
    interleaved round-robin so that each sees the same machine noise."""
    requests = [
        rpc.ListMembersRequest(organization_id=search.organization_id, query=search.query)
        for search in searches
    ]
    samples: list[list[float]] = [[] for _ in searches]
    matches = [0] * len(searches)
    for _ in range(rounds):
        for index, request in enumerate(requests):
            started = time.perf_counter()
            reply = stub.ListMembers(request, metadata=metadata, timeout=30)
            samples[index].append(time.perf_counter() - started)
            matches[index] = reply.total_size
    return [
        SearchTiming(search.members, search.query, found, statistics.median(times))
        for search, found, times in zip(searches, matches, samples, strict=True)
    ]


@dataclass(frozen=True)
class Comparison:
    kind: str  # what the query finds
    small: SearchTiming
    large: SearchTiming

    @property
    def ratio(self) -> float:
        return self.large.median_seconds / self.small.median_seconds


def compare(
    database_url: str, *, large: int = 100_000, small: int = 100, rounds: int = 200
) -> list[Comparison]:
    """Loads an organization of `large` and one of `small` members into the database
    and times the same kinds of query in both: a prefix that finds one member (the
    usual search) and a first name that one member in eight has."""
    prepare_database(database_url)
    engine = create_database_engine(database_url)
    with tempfile.TemporaryDirectory() as keys:
        key_file = Path(keys) / "dev-key"
        settings = replace(
            Settings(), port=0, database_url=database_url, dev=True, dev_key_file=key_file
        )
        server = OrgServer(settings)
        server.run_in_background()
        try:
            with _stub(server.port) as stub:
                key = devkeys.load_or_create(key_file)
                auth = (("authorization", f"Bearer {devkeys.mint_token(key, subject='bench')}"),)
                searches = []
                for size in (small, large):
                    tag = uuid.uuid4().hex[:8]
                    org = stub.CreateOrganization(
                        rpc.CreateOrganizationRequest(name=f"Scale {size}"), metadata=auth
                    ).organization
                    load_members(engine, org.id, size, tag)
                    searches.append(Search(org.id, size + 1, username(tag, size // 2)))
                    searches.append(Search(org.id, size + 1, FIRST_NAMES[1].upper()))
                time_searches(stub, auth, searches, rounds=max(1, rounds // 10))  # warm-up
                timings = time_searches(stub, auth, searches, rounds=rounds)
        finally:
            server.stop_background(grace=1)
            engine.dispose()
    small_one, small_many, large_one, large_many = timings
    return [
        Comparison("one member", small_one, large_one),
        Comparison("one member in eight", small_many, large_many),
    ]


class _stub:  # a context manager used like a function
    def __init__(self, port: int) -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")

    def __enter__(self) -> rpc_grpc.OrganizationServiceStub:
        return rpc_grpc.OrganizationServiceStub(self._channel)

    def __exit__(self, *exc: object) -> None:
        self._channel.close()


def _report(comparisons: list[Comparison]) -> Iterator[str]:
    for comparison in comparisons:
        yield f"a query that finds {comparison.kind}:"
        for timing in (comparison.small, comparison.large):
            yield (
                f"  {timing.members:>7} members: {timing.query!r} finds {timing.matches}"
                f" (total_size), median {timing.median_seconds * 1000:.2f} ms"
            )
        yield f"  ratio large/small: {comparison.ratio:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("database_url", help="an empty database (PostgreSQL for the real test)")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    comparisons = compare(args.database_url, large=args.members, rounds=args.rounds)
    print("\n".join(_report(comparisons)))


if __name__ == "__main__":
    main()
