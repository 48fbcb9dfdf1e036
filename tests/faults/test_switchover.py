"""Switchover (OPERATIONS.md, "Database faults"): the service runs on a multi-host URL
naming a primary and its streaming standby; the primary shuts down and the standby is
promoted. Meanwhile calls fail with UNAVAILABLE (never INTERNAL), within 5 s of the
promotion they succeed again without restarting the service, and no write the service
acknowledged is lost.

The figures the contract is about (time to the first UNAVAILABLE, time from the
promotion to the first success) are printed and named in the assertion messages.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc

from tests.e2e.conftest import ServiceProcess
from tests.faults.conftest import Caller
from tests.faults.conftest import Findings
from tests.faults.conftest import Outcome
from tests.faults.conftest import excerpt
from tests.faults.conftest import summary
from tests.support.fixtures import new_cluster
from tests.support.pgcluster import HOST
from tests.support.pgcluster import SUPERUSER
from tests.support.pgcluster import PgCluster

pytestmark = [pytest.mark.faults, pytest.mark.postgres_only]

DATABASE = "switchover"
RECOVERY_LIMIT = 5.0  # "after a switchover calls succeed again within 5 s"
ANSWER_LIMIT = 3.0  # UNAVAILABLE "within 2 s", with the margin of tests/faults
GAP_SECONDS = 1.0  # between the primary going down and the promotion: nobody answers
AFTER_RECOVERY_SECONDS = 1.0  # the writer keeps going this long after its first success
CALL_TIMEOUT = 5.0  # the writer's deadline per call
PAUSE_SECONDS = 0.02  # between the writer's calls


def multi_host_url(dbname: str, *clusters: PgCluster) -> str:
    """The SQLAlchemy form of a libpq multi-host URL: whichever host accepts writes."""
    hosts = "&".join(f"host={HOST}:{cluster.port}" for cluster in clusters)
    return f"postgresql+psycopg://{SUPERUSER}@/{dbname}?{hosts}&target_session_attrs=read-write"


@dataclass(frozen=True)
class Create:
    """One CreateOrganization the writer made: what it sent and how it ended."""

    request: rpc.CreateOrganizationRequest
    started: float
    outcome: Outcome

    @property
    def ended(self) -> float:
        return self.started + self.outcome.seconds

    @property
    def organization_id(self) -> str:
        response: rpc.CreateOrganizationResponse = self.outcome.response
        return str(response.organization.id)


class Writer:
    """Creates organizations one after the other in a thread, each with its own
    request_id, until stopped; keeps every call."""

    def __init__(self, caller: Caller, prefix: str) -> None:
        self.caller = caller
        self.prefix = prefix
        self.creates: list[Create] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            request = rpc.CreateOrganizationRequest(
                name=f"{self.prefix} {len(self.creates)}", request_id=str(uuid.uuid4())
            )
            started = time.monotonic()
            outcome = self.caller("CreateOrganization", request, timeout=CALL_TIMEOUT)
            self.creates.append(Create(request, started, outcome))
            self._stop.wait(PAUSE_SECONDS)

    def first(self, code: grpc.StatusCode, since: float) -> Create | None:
        """The first call started after `since` that ended with `code`."""
        return next(
            (c for c in list(self.creates) if c.started >= since and c.outcome.code == code), None
        )

    def wait_for(self, code: grpc.StatusCode, since: float, timeout: float) -> Create | None:
        deadline = time.monotonic() + timeout
        while (found := self.first(code, since)) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return found

    def stop(self) -> list[Create]:
        self._stop.set()
        self._thread.join(CALL_TIMEOUT + 5)
        assert not self._thread.is_alive(), "the writer did not stop"
        return self.creates


@pytest.fixture
def primary_and_standby() -> Iterator[tuple[PgCluster, PgCluster]]:
    """A primary with the test's database and a streaming standby of it."""
    with new_cluster() as primary:
        primary.start().create_database(DATABASE)
        with PgCluster.standby_of(primary) as standby:
            yield primary, standby


@pytest.fixture
def service(
    tmp_path: Path, primary_and_standby: tuple[PgCluster, PgCluster]
) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        tmp_path / "service", "--database-url", multi_host_url(DATABASE, *primary_and_standby)
    )
    try:
        yield service.start().wait_until_serving()
    finally:
        service.close()


@pytest.fixture
def caller(service: ServiceProcess) -> Iterator[Caller]:
    caller = Caller(service.port, service.token(f"switchover-{uuid.uuid4().hex[:8]}"))
    try:
        yield caller
    finally:
        caller.close()


def test_switchover_to_the_promoted_standby(
    primary_and_standby: tuple[PgCluster, PgCluster], service: ServiceProcess, caller: Caller
) -> None:
    primary, standby = primary_and_standby
    findings = Findings()
    prefix = f"Switchover {uuid.uuid4().hex[:8]}"
    writer = Writer(caller, prefix)
    try:
        assert writer.wait_for(grpc.StatusCode.OK, 0, timeout=10), "no create succeeded"

        # slow: the primary shuts down, nobody accepts writes for GAP_SECONDS, then the
        # standby is promoted
        stopping = time.monotonic()
        primary.stop("fast")
        time.sleep(GAP_SECONDS)
        promoting = time.monotonic()
        standby.promote()
        promoted = time.monotonic()
        first_success = writer.wait_for(grpc.StatusCode.OK, promoted, timeout=RECOVERY_LIMIT + 5)
        time.sleep(AFTER_RECOVERY_SECONDS)
    finally:
        creates = writer.stop()

    # How long the outage looked like to the client.
    first_unavailable = next(
        (c for c in creates if c.ended >= stopping and c.outcome.code != grpc.StatusCode.OK), None
    )
    to_unavailable = None if first_unavailable is None else first_unavailable.ended - stopping
    to_success = None if first_success is None else first_success.ended - promoted
    failed = [c for c in creates if c.outcome.code != grpc.StatusCode.OK]
    figures = (
        f"{len(creates)} creates, {len(failed)} failed; the primary stopped in "
        f"{promoting - GAP_SECONDS - stopping:.2f}s, the promotion took "
        f"{promoted - promoting:.2f}s; first failed call {_seconds(to_unavailable)} after the "
        f"stop began; first success {_seconds(to_success)} after the promotion completed"
    )
    print(f"\nswitchover: {figures}")

    findings.expect(bool(failed), f"no call failed during the switchover ({figures})")
    wrong = [
        c.outcome
        for c in failed
        if c.outcome.code != grpc.StatusCode.UNAVAILABLE
        or c.outcome.reason != "DATABASE_UNAVAILABLE"
        or c.outcome.seconds >= ANSWER_LIMIT
    ]
    findings.expect(
        not wrong,
        f"{len(wrong)} of {len(failed)} failed calls did not end UNAVAILABLE "
        f"(DATABASE_UNAVAILABLE) within {ANSWER_LIMIT:.0f}s:\n{summary(wrong[:12])}\n"
        f"{excerpt(service.stderr())}",
    )
    findings.expect_within(to_success, RECOVERY_LIMIT, "first success after promotion", figures)
    late_failures = [c.outcome for c in failed if first_success and c.started > first_success.ended]
    findings.expect(
        not late_failures, f"calls failed after the first success:\n{summary(late_failures[:12])}"
    )
    findings.expect(service.process.poll() is None, "the service exited; it must keep running")
    findings.assert_none()

    # Nothing acknowledged is lost; a failed create was committed or not, and retrying
    # it with its request_id on the new primary creates it at most once.
    acknowledged = {c.organization_id for c in creates if c.outcome.code == grpc.StatusCode.OK}
    retried = {str(caller.ok("CreateOrganization", c.request).organization.id) for c in failed}
    with standby.connect(DATABASE) as conn:
        stored = {
            str(row[0])
            for row in conn.execute(
                "SELECT id FROM organizations WHERE name LIKE %s", (f"{prefix} %",)
            )
        }
    lost = acknowledged - stored
    assert not lost, f"{len(lost)} acknowledged organization(s) missing on the new primary"
    assert len(stored) == len(acknowledged | retried) == len(creates), (
        f"{len(stored)} rows for {len(creates)} distinct creates ({len(acknowledged)} "
        f"acknowledged, {len(failed)} failed and retried)"
    )


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}s"
