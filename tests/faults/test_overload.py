"""Admission control (OPERATIONS.md, "Overload"): beyond --max-concurrent-rpcs a unary
call is refused at once, health still answers, and calls are admitted again once the
calls in flight end."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2

from tests.faults.conftest import LIVENESS
from tests.faults.conftest import READINESS
from tests.faults.conftest import FaultDatabase
from tests.faults.conftest import Findings
from tests.faults.conftest import Serve
from tests.faults.conftest import get_org
from tests.faults.conftest import rename_org
from tests.faults.conftest import summary
from tests.faults.conftest import wait_for_lock_waiters

pytestmark = [pytest.mark.faults, pytest.mark.postgres_only]

LIMIT = 4
REFUSAL_LIMIT = 0.5  # "at once", with a margin
HEALTH_LIMIT = 0.3  # "within 100 ms", with a margin


def test_calls_beyond_the_limit_are_refused_at_once(serve: Serve, fault_db: FaultDatabase) -> None:
    findings = Findings()
    served = serve(env={"ORGSERVICE_MAX_CONCURRENT_RPCS": str(LIMIT)})
    caller = served.caller
    # One organization per call: the server lets only one mutation of an organization
    # at a time reach the database, so calls on one locked row would not all be in flight
    # there (they would wait in the server, still counted against the limit).
    locked = [caller.create_org(f"Locked {i}").id for i in range(LIMIT)]
    other = caller.create_org("Other")

    with ThreadPoolExecutor(LIMIT) as pool:
        with fault_db.row_locked(*locked):
            in_flight = [
                pool.submit(caller, "UpdateOrganization", rename_org(org_id, f"Busy {i}"), 10)
                for i, org_id in enumerate(locked)
            ]
            wait_for_lock_waiters(fault_db, LIMIT)  # all admitted, all waiting on the lock
            extra = caller("GetOrganization", get_org(other.id), 5)
            health = {name: caller.health(name, timeout=2) for name in (LIVENESS, READINESS)}
        outcomes = [future.result() for future in in_flight]
    admitted_again = caller("GetOrganization", get_org(other.id), 5)

    findings.expect(
        extra.code == grpc.StatusCode.RESOURCE_EXHAUSTED and extra.seconds < REFUSAL_LIMIT,
        f"a call beyond {LIMIT} in flight: {extra} "
        f"(must be RESOURCE_EXHAUSTED within {REFUSAL_LIMIT}s)",
    )
    for name, answer in health.items():
        serving = answer.code == grpc.StatusCode.OK and (
            answer.response.status == health_pb2.HealthCheckResponse.SERVING
        )
        findings.expect(
            serving and answer.seconds < HEALTH_LIMIT,
            f"Health/Check {name!r} at the limit: {answer} "
            f"(must be SERVING within {HEALTH_LIMIT}s)",
        )
    findings.expect(
        all(outcome.code == grpc.StatusCode.OK for outcome in outcomes),
        f"the calls in flight must succeed once the lock is gone:\n{summary(outcomes)}",
    )
    findings.expect(
        admitted_again.code == grpc.StatusCode.OK,
        f"a call after the calls in flight ended: {admitted_again} (must be admitted)",
    )
    findings.assert_none()
