"""SIGTERM (OPERATIONS.md, "Shutdown"): health and new calls are refused within 100 ms,
calls in flight or queued finish, and the process exits 0 within grace + 2 s, even when
the database hangs; a second SIGTERM exits 1 at once.

After SIGTERM a health check may also be refused outright (UNAVAILABLE): either way the
probe no longer reports SERVING, which is what the orchestrator acts on.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from tests.faults.conftest import FaultDatabase
from tests.faults.conftest import Findings
from tests.faults.conftest import Outcome
from tests.faults.conftest import Sample
from tests.faults.conftest import Serve
from tests.faults.conftest import Served
from tests.faults.conftest import create_org
from tests.faults.conftest import excerpt
from tests.faults.conftest import exit_after
from tests.faults.conftest import frozen
from tests.faults.conftest import get_org
from tests.faults.conftest import summary
from tests.faults.conftest import wait_for_lock_waiters
from tests.faults.conftest import wait_until_time
from tests.support.pgcluster import PgCluster

pytestmark = [pytest.mark.faults, pytest.mark.postgres_only]

IN_FLIGHT = 50
REFUSAL_LIMIT = 0.3  # "within 100 ms", with a margin
EXIT_MARGIN = 1.0  # on top of the contract's grace + 2 s
SECOND_SIGNAL_LIMIT = 1.0  # "at once", with a margin


def serve_with_grace(serve: Serve, grace: float) -> Served:
    return serve(env={"ORGSERVICE_SHUTDOWN_GRACE": str(grace)})


def exit_limit(grace: float) -> float:
    """The contract's "within grace + 2 s", with a margin."""
    return grace + 2 + EXIT_MARGIN


def sigterm_then_a_new_call(served: Served, organization_id: str) -> tuple[float, Outcome]:
    """Sends SIGTERM and, REFUSAL_LIMIT later, a new call (which must be refused): when
    the signal went out, and how the call ended."""
    signalled = time.monotonic()
    served.service.process.send_signal(signal.SIGTERM)
    wait_until_time(signalled + REFUSAL_LIMIT)
    return signalled, served.caller("GetOrganization", get_org(organization_id), 5)


def neither_serving(sample: Sample) -> bool:
    return sample.liveness != "SERVING" and sample.readiness != "SERVING"


def expect_refusing_at_once(
    findings: Findings, served: Served, signalled: float, new_call: Outcome
) -> None:
    """Health turned away from SERVING and `new_call`, made REFUSAL_LIMIT after the
    signal, was refused with UNAVAILABLE."""
    turned = served.health.first(neither_serving, signalled, timeout=2)
    findings.expect_within(
        turned,
        REFUSAL_LIMIT,
        "liveness and readiness not SERVING after SIGTERM",
        served.health.describe(signalled - 0.2),
    )
    findings.expect(
        new_call.code == grpc.StatusCode.UNAVAILABLE,
        f"a new call {REFUSAL_LIMIT}s after SIGTERM: {new_call} (must be UNAVAILABLE)",
    )


def expect_exit(
    findings: Findings, served: Served, code: int | None, seconds: float, limit: float
) -> None:
    findings.figure("exit after SIGTERM", seconds)
    findings.expect(
        code == 0 and seconds < limit,
        f"exit code {code} after {seconds:.2f}s (must be 0 within {limit:.1f}s); "
        f"stderr:\n{excerpt(served.service.stderr())}",
    )


def test_sigterm_drains_the_calls_in_flight(serve: Serve, fault_db: FaultDatabase) -> None:
    findings = Findings()
    grace = 5.0
    served = serve_with_grace(serve, grace)
    known = served.caller.create_org("Known")

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        # Inserts wait for the table lock: every create is in flight (or queued) at SIGTERM.
        with fault_db.table_locked("organizations"):
            creates = [
                pool.submit(served.caller, "CreateOrganization", create_org(f"Drain {i:02}"), 30)
                for i in range(IN_FLIGHT)
            ]
            wait_for_lock_waiters(fault_db, 1)
            time.sleep(1.0)  # slow: lets the other creates reach the server
            signalled, new_call = sigterm_then_a_new_call(served, known.id)
        # The lock is gone: the calls in flight can finish within the grace period.
        code, seconds = exit_after(served.service, signalled, exit_limit(grace))
        outcomes = [future.result() for future in creates]

    expect_refusing_at_once(findings, served, signalled, new_call)
    failed = [outcome for outcome in outcomes if outcome.code != grpc.StatusCode.OK]
    findings.expect(
        not failed,
        f"{len(failed)} of {IN_FLIGHT} calls in flight at SIGTERM did not succeed:\n"
        + summary(failed[:12]),
    )
    created = fault_db.count("SELECT count(*) FROM organizations WHERE name LIKE %s", "Drain %")
    succeeded = IN_FLIGHT - len(failed)
    findings.expect(
        created == succeeded,
        f"{created} organizations were created, but {succeeded} clients were told so",
    )
    expect_exit(findings, served, code, seconds, exit_limit(grace))
    findings.assert_none()


def calls_hanging_on(
    pool: ThreadPoolExecutor, served: Served, organization_id: str
) -> list[Future[Outcome]]:
    """Five reads that will wait for a frozen database; returns once they are sent."""
    calls = [
        pool.submit(served.caller, "GetOrganization", get_org(organization_id), 30)
        for _ in range(5)
    ]
    time.sleep(0.5)  # slow: lets them reach the server and the database
    return calls


def test_sigterm_exits_in_time_while_the_database_hangs(
    serve: Serve, own_postgres: PgCluster
) -> None:
    findings = Findings()
    grace = 2.0
    served = serve_with_grace(serve, grace)
    organization = served.caller.create_org()

    with ThreadPoolExecutor(5) as pool:
        with frozen(own_postgres):
            in_flight = calls_hanging_on(pool, served, organization.id)
            signalled, new_call = sigterm_then_a_new_call(served, organization.id)
            # slow: the grace period runs out while the database stays frozen
            code, seconds = exit_after(served.service, signalled, exit_limit(grace))
        outcomes = [future.result() for future in in_flight]

    expect_refusing_at_once(findings, served, signalled, new_call)
    expect_exit(findings, served, code, seconds, exit_limit(grace))
    findings.expect(
        not any(o.code in {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN} for o in outcomes),
        f"calls cut off by the shutdown:\n{summary(outcomes)}",
    )
    findings.assert_none()


def test_second_sigterm_exits_1_at_once(serve: Serve, own_postgres: PgCluster) -> None:
    findings = Findings()
    served = serve_with_grace(serve, 10)  # only the 2nd signal ends it
    organization = served.caller.create_org()

    with ThreadPoolExecutor(5) as pool, frozen(own_postgres):
        calls_hanging_on(pool, served, organization.id)
        served.service.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        second = time.monotonic()
        served.service.process.send_signal(signal.SIGTERM)
        code, seconds = exit_after(served.service, second, SECOND_SIGNAL_LIMIT + 1)

    findings.expect(
        code == 1 and seconds < SECOND_SIGNAL_LIMIT,
        f"after a second SIGTERM: exit code {code} after {seconds:.2f}s "
        f"(must be 1 within {SECOND_SIGNAL_LIMIT}s)",
    )
    findings.assert_none()
