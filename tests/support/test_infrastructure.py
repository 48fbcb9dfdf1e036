"""The test infrastructure itself: own clusters start, stop, freeze and replicate as the
fault tests assume, and PgBouncer pools transactions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import TupleRow

from tests.support.pgbouncer import PgBouncer
from tests.support.pgbouncer import direct_url_for
from tests.support.pgcluster import PgCluster
from tests.support.processes import is_gone
from tests.support.processes import poll

pytestmark = pytest.mark.postgres_only

# psycopg (like libpq) waits at least 2 s whatever connect_timeout says.
FROZEN_CONNECT_LIMIT = 3.0


def test_cluster_answers_queries_on_its_url(own_postgres: PgCluster) -> None:
    name = f"infra_{uuid.uuid4().hex[:8]}"
    url = own_postgres.create_database(name)
    assert url == f"postgresql+psycopg://postgres@127.0.0.1:{own_postgres.port}/{name}"
    with own_postgres.connect(name) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
        # The server runs unprivileged (it refuses root), on loopback only.
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)


def test_freeze_stops_answers_and_thaw_restores_them(own_postgres: PgCluster) -> None:
    own_postgres.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(own_postgres.conninfo(), connect_timeout=1)
        elapsed = time.monotonic() - started
        assert elapsed < FROZEN_CONNECT_LIMIT, f"a connect to a frozen cluster took {elapsed:.2f}s"
    finally:
        own_postgres.thaw()
    assert own_postgres.answers()


@pytest.mark.parametrize("how", ["fast", "immediate", "kill"])
def test_stopped_or_killed_cluster_starts_again(own_postgres: PgCluster, how: str) -> None:
    note = uuid.uuid4().hex
    with own_postgres.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS survivors (note text)")
        conn.execute("INSERT INTO survivors VALUES (%s)", (note,))
    started = time.monotonic()
    if how == "kill":
        own_postgres.kill()
    else:
        own_postgres.stop("fast" if how == "fast" else "immediate")
    assert not own_postgres.running
    with pytest.raises(psycopg.OperationalError):
        own_postgres.connect(connect_timeout=2)
    own_postgres.start()
    assert time.monotonic() - started < 10, "a stop/start cycle should take seconds"
    with own_postgres.connect() as conn:
        assert conn.execute("SELECT 1 FROM survivors WHERE note = %s", (note,)).fetchone()


def test_frozen_cluster_tears_down_without_leftovers() -> None:
    cluster = PgCluster.initdb().start()
    with cluster.connect() as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        cluster.freeze()
        cluster.close()
    assert backend is not None
    assert is_gone(backend[0])
    assert not cluster.root.exists()


@pytest.fixture
def standby(own_postgres: PgCluster) -> Iterator[PgCluster]:
    with PgCluster.standby_of(own_postgres) as cluster:
        yield cluster


def test_standby_replicates_and_promotes(own_postgres: PgCluster, standby: PgCluster) -> None:
    with own_postgres.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS replicated (note text)")
        conn.execute("INSERT INTO replicated VALUES ('from the primary')")

    def replicated() -> bool:
        with standby.connect() as conn:
            try:
                rows = conn.execute("SELECT note FROM replicated").fetchall()
            except psycopg.errors.UndefinedTable:
                return False  # not even the CREATE TABLE has arrived
        return rows == [("from the primary",)]

    poll(replicated, 10, "the row to reach the standby")
    with standby.connect() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO replicated VALUES ('refused')")

    standby.promote()
    with standby.connect() as conn:
        conn.execute("INSERT INTO replicated VALUES ('after promotion')")
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)


def test_pgbouncer_pools_transactions(pgbouncer: PgBouncer) -> None:
    def connect() -> psycopg.Connection[TupleRow]:
        # No server-side prepared statements: PgBouncer (before 1.21) cannot pool them.
        return psycopg.connect(
            pgbouncer.conninfo("postgres"), autocommit=True, prepare_threshold=None
        )

    with connect() as first, connect() as second:
        backends = []
        for _ in range(2):  # two transactions in a row on one client connection
            with first.transaction():
                row = first.execute("SELECT pg_backend_pid()").fetchone()
                assert row is not None
                backends.append(row[0])
        row = second.execute("SELECT pg_backend_pid()").fetchone()
    # Transaction pooling: while `first` stays connected but idle, its server connection
    # serves `second` (session pooling would have given `second` a new one).
    assert row == (backends[-1],)

    pooled = pgbouncer.url("somedb")
    assert direct_url_for(pooled) == (
        f"postgresql+psycopg://postgres@{pgbouncer.upstream_host}:{pgbouncer.upstream_port}/somedb"
    )
