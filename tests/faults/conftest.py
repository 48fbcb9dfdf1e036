"""Fault injection: the real `orgservice serve` process on a database in a PostgreSQL
cluster the test module owns, which the tests stop, freeze and lock (OPERATIONS.md:
"Deadlines and cancellation", "Database faults", "Shutdown", "Overload").

Timings in the contract are asserted with a margin for busy test machines:
"within 2 s" is asserted as < 3 s, "within 100 ms" as < 300 ms.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc
from orgs.v1 import resources_pb2

from tests.e2e.conftest import SERVICE
from tests.e2e.conftest import HealthProbe
from tests.e2e.conftest import ServiceProcess
from tests.support.pgcluster import PgCluster
from tests.support.pgcluster import StopMode
from tests.support.processes import poll
from tests.support.rpc_outcomes import error_reason

LIVENESS = ""
READINESS = SERVICE
CALL_TIMEOUT = 10.0  # client deadline of calls that are expected to succeed

# -- calls and their outcomes ---------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one call ended: its code, ErrorInfo reason, message and duration."""

    code: grpc.StatusCode
    reason: str
    message: str
    seconds: float
    response: Any = None

    def __str__(self) -> str:
        reason = f" reason={self.reason}" if self.reason else ""
        message = f": {self.message}" if self.message else ""
        return f"{self.code.name}{reason} after {self.seconds:.2f}s{message}"


def attempt(call: Callable[[], Any]) -> Outcome:
    """Runs one RPC and reports how it ended; never raises for RPC errors."""
    started = time.monotonic()
    try:
        response = call()
    except grpc.RpcError as error:
        code = error.code()
        message = error.details() or ""
        return Outcome(code, error_reason(error), message, time.monotonic() - started)
    return Outcome(grpc.StatusCode.OK, "", "", time.monotonic() - started, response)


def summary(outcomes: list[Outcome]) -> str:
    """One line per outcome, for assertion messages."""
    return "\n".join(f"  #{index}: {outcome}" for index, outcome in enumerate(outcomes))


# (test, what, seconds) of every timing the tests measured, printed at the end of the run.
FIGURES: list[tuple[str, str, float | None]] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault figures (seconds)")
    for test, what, seconds in FIGURES:
        measured = "never" if seconds is None else f"{seconds:6.2f}"
        terminalreporter.write_line(f"{measured:>6}  {what}  [{test}]")


class Findings:
    """Contract violations collected through a test and reported together at its end,
    so that one run shows everything a server gets wrong, not just the first thing."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def expect(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def figure(self, what: str, seconds: float | None) -> None:
        """Records a measured time for the run's summary (None: it never happened)."""
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].removesuffix(" (call)")
        FIGURES.append((test, what, seconds))

    def expect_within(self, seconds: float | None, limit: float, what: str, details: str) -> None:
        """`what` happened after `seconds` (None: never), which must be under `limit`."""
        self.figure(what, seconds)
        when = "never" if seconds is None else f"after {seconds:.2f}s"
        self.expect(
            seconds is not None and seconds < limit,
            f"{what}: {when} (limit {limit:.2f}s)\n{details}",
        )

    def assert_none(self) -> None:
        if self.problems:
            report = "\n\n".join(self.problems)
            pytest.fail(f"{len(self.problems)} contract violation(s):\n\n{report}")


_CHAINED = ("Traceback", "During handling", "The above exception")


def excerpt(log: str, lines: int = 20) -> str:
    """For assertion messages: the first traceback of the log (its head and the exception
    it ends with), else the log's end; without the access lines of the health checks the
    tests make all the time."""
    kept = [line for line in log.splitlines() if "/grpc.health.v1.Health/" not in line]
    start = next((i for i, line in enumerate(kept) if line.startswith("Traceback")), None)
    if start is None:
        return "\n".join(kept[-lines:])
    end = start + 1
    while end < len(kept) - 1:
        # An unindented line names an exception; a chained one follows after a marker.
        if kept[end][:1] not in {"", " ", "\t"} and not kept[end].startswith(_CHAINED):
            following = next((line for line in kept[end + 1 :] if line.strip()), "")
            if not following.startswith(_CHAINED):
                break
        end += 1
    return "\n".join([*kept[start : start + 3], "  ...", *kept[max(start + 3, end - 2) : end + 1]])


class Caller:
    """OrganizationService calls as one user, over a channel of its own."""

    def __init__(self, port: int, token: str) -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = rpc_grpc.OrganizationServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),)

    def __call__(self, method: str, request: Message, timeout: float = CALL_TIMEOUT) -> Outcome:
        call = getattr(self._stub, method)
        return attempt(lambda: call(request, metadata=self._metadata, timeout=timeout))

    def ok(self, method: str, request: Message, timeout: float = CALL_TIMEOUT) -> Any:
        """The response of a call that must succeed."""
        outcome = self(method, request, timeout)
        assert outcome.code == grpc.StatusCode.OK, f"{method} failed: {outcome}"
        return outcome.response

    def create_org(self, name: str | None = None) -> resources_pb2.Organization:
        name = name or f"Org {uuid.uuid4().hex[:8]}"
        request = rpc.CreateOrganizationRequest(name=name)
        response: rpc.CreateOrganizationResponse = self.ok("CreateOrganization", request)
        return response.organization

    def health(self, service: str, timeout: float = 5) -> Outcome:
        """grpc.health.v1 Check over this caller's channel; `response.status` on OK."""
        request = health_pb2.HealthCheckRequest(service=service)
        return attempt(lambda: self._health.Check(request, timeout=timeout))

    def close(self) -> None:
        self._channel.close()


def get_org(organization_id: str) -> rpc.GetOrganizationRequest:
    return rpc.GetOrganizationRequest(organization_id=organization_id)


def rename_org(organization_id: str, name: str) -> rpc.UpdateOrganizationRequest:
    return rpc.UpdateOrganizationRequest(
        organization=resources_pb2.Organization(id=organization_id, name=name),
        update_mask=field_mask_pb2.FieldMask(paths=["name"]),
    )


def create_org(name: str) -> rpc.CreateOrganizationRequest:
    return rpc.CreateOrganizationRequest(name=name, request_id=str(uuid.uuid4()))


# -- health over time -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic() when the answer arrived
    liveness: str
    readiness: str


@dataclass
class HealthRecorder:
    """Checks both health names every 50 ms in a thread and keeps every answer."""

    port: int
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._probe = HealthProbe(self.port)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(0.05):
            liveness = self._probe.status(LIVENESS)
            readiness = self._probe.status(READINESS)
            self.samples.append(Sample(time.monotonic(), liveness, readiness))

    def since(self, started: float) -> list[Sample]:
        return [sample for sample in self.samples if sample.at >= started]

    def first(
        self, predicate: Callable[[Sample], bool], since: float, timeout: float
    ) -> float | None:
        """Seconds from `since` to the first answer that satisfies `predicate`, waiting
        up to `timeout` seconds for one; None if none came."""

        def found() -> Sample | None:
            return next((sample for sample in self.since(since) if predicate(sample)), None)

        with contextlib.suppress(TimeoutError):
            poll(lambda: found() is not None, timeout, "a health answer")
        sample = found()
        return None if sample is None else sample.at - since

    def describe(self, since: float) -> str:
        """The answers since `since`, one line per change."""
        lines, previous = [], None
        for sample in self.since(since):
            if (sample.liveness, sample.readiness) != previous:
                previous = (sample.liveness, sample.readiness)
                lines.append(
                    f"  from {sample.at - since:+.2f}s: "
                    f"liveness={sample.liveness} readiness={sample.readiness}"
                )
        return "\n".join(lines) or "  (no answers)"

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._probe.close()


# -- the database -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultDatabase:
    """This test's database in the module's cluster, read directly (not via the service)."""

    cluster: PgCluster
    name: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.name)

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        return self.cluster.connect(self.name, autocommit=autocommit)

    def rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(query, params).fetchall()

    def count(self, query: str, *params: object) -> int:
        [(value,)] = self.rows(query, *params)
        return int(value)

    def lock_waiters(self) -> int:
        """Sessions of this database waiting for a lock right now."""
        return self.count(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            self.name,
        )

    def busy_sessions(self) -> int:
        """Other sessions that run a statement or are inside a transaction."""
        return self.count(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND pid <> pg_backend_pid() AND state <> 'idle'",
            self.name,
        )

    @contextlib.contextmanager
    def row_locked(self, *organization_ids: str) -> Iterator[psycopg.Connection[Any]]:
        """Holds the organizations' rows FOR UPDATE in an open transaction until exit."""
        with self.connect(autocommit=False) as conn:
            locked = conn.execute(
                "SELECT id FROM organizations WHERE id = ANY(%s) FOR UPDATE",
                (list(organization_ids),),
            ).fetchall()
            assert sorted(row[0] for row in locked) == sorted(organization_ids)
            try:
                yield conn
            finally:
                conn.rollback()

    @contextlib.contextmanager
    def table_locked(self, table: str) -> Iterator[psycopg.Connection[Any]]:
        """Holds SHARE mode on `table` until exit: its rows can be read, none inserted."""
        with self.connect(autocommit=False) as conn:
            conn.execute(f"LOCK TABLE {table} IN SHARE MODE")
            try:
                yield conn
            finally:
                conn.rollback()


def wait_for_lock_waiters(database: FaultDatabase, count: int, timeout: float = 10) -> None:
    try:
        poll(lambda: database.lock_waiters() >= count, timeout, f"{count} lock waiters")
    except TimeoutError:
        pytest.fail(
            f"only {database.lock_waiters()} of {count} calls reached the lock within "
            f"{timeout:.0f}s"
        )


def exit_after(service: ServiceProcess, since: float, timeout: float) -> tuple[int | None, float]:
    """Waits up to `timeout` seconds for the service to exit: its exit code (None if it
    still runs) and the seconds from `since` until it exited (or gave up waiting)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        service.process.wait(timeout)
    return service.process.poll(), time.monotonic() - since


def wait_until_time(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


@contextlib.contextmanager
def frozen(cluster: PgCluster) -> Iterator[float]:
    """The cluster frozen (every process stopped) until exit; yields when it froze."""
    cluster.freeze()
    try:
        yield time.monotonic()
    finally:
        cluster.thaw()


@contextlib.contextmanager
def stopped(cluster: PgCluster, mode: StopMode) -> Iterator[float]:
    """The cluster shut down until exit; yields when it was down."""
    cluster.stop(mode)
    try:
        yield time.monotonic()
    finally:
        cluster.start()


def recover(cluster: PgCluster) -> None:
    """Undoes whatever a test did to the module's cluster."""
    cluster.thaw()
    cluster.start()


@pytest.fixture
def fault_db(own_postgres: PgCluster) -> FaultDatabase:
    """A new database for this test, in the module's (running, thawed) cluster. It is
    not dropped: the cluster goes away with the module."""
    recover(own_postgres)  # an earlier test may have failed halfway through a fault
    name = f"faults_{uuid.uuid4().hex[:12]}"
    own_postgres.create_database(name)
    return FaultDatabase(own_postgres, name)


# -- the service ----------------------------------------------------------------------------


@dataclass
class Served:
    """A running `orgservice serve`, a user calling it, and its health over time."""

    service: ServiceProcess
    caller: Caller
    health: HealthRecorder

    def close(self) -> None:
        self.health.close()
        self.caller.close()


Serve = Callable[..., Served]


@pytest.fixture
def serve(tmp_path: Path, fault_db: FaultDatabase) -> Iterator[Serve]:
    """`serve(env={...})` starts `orgservice serve --dev --database-url <fault_db>` with
    these ORGSERVICE_* variables, waits until it is SERVING (calling `while_starting`
    with the process first, if given), provisions a user and starts recording health.

    Teardown recovers the cluster first, so that calls hanging on it end and the service
    can stop in time, then stops the service."""
    services: list[ServiceProcess] = []
    served: list[Served] = []

    def start(
        env: dict[str, str] | None = None,
        while_starting: Callable[[ServiceProcess], None] | None = None,
    ) -> Served:
        workdir = tmp_path / f"service-{len(services)}"
        service = ServiceProcess(workdir, "--database-url", fault_db.url, env=env)
        services.append(service)
        service.start()
        if while_starting is not None:
            while_starting(service)
        service.wait_until_serving()
        caller = Caller(service.port, service.token(f"fault-user-{uuid.uuid4().hex[:8]}"))
        caller.ok("GetCurrentUser", rpc.GetCurrentUserRequest())  # provisioned up front
        served.append(Served(service, caller, HealthRecorder(service.port)))
        return served[-1]

    yield start
    recover(fault_db.cluster)
    for running in served:
        running.close()
    for service in services:
        service.close()
