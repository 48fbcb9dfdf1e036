"""A row lock held elsewhere (OPERATIONS.md, "Deadlines and cancellation"): calls waiting
on it end at their deadline, stall nothing else, and never commit after their client
gave up."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from tests.faults.conftest import LIVENESS
from tests.faults.conftest import READINESS
from tests.faults.conftest import FaultDatabase
from tests.faults.conftest import Findings
from tests.faults.conftest import Serve
from tests.faults.conftest import get_org
from tests.faults.conftest import rename_org
from tests.faults.conftest import summary
from tests.faults.conftest import wait_for_lock_waiters
from tests.support.processes import poll

pytestmark = [pytest.mark.faults, pytest.mark.postgres_only]

LOCKED_CALLS = 20
DEADLINE = 1.0  # the client deadline of the calls on the locked row
MARGIN = 0.5
QUICK = 0.5  # calls unrelated to the lock answer within this


def organization_row(database: FaultDatabase, organization_id: str) -> list[tuple[Any, ...]]:
    return database.rows(
        "SELECT name, version, update_time FROM organizations WHERE id = %s", organization_id
    )


def recorded_updates(database: FaultDatabase, organization_id: str) -> int:
    return database.count(
        "SELECT count(*) FROM audit_events"
        " WHERE organization_id = %s AND action = 'organization.updated'",
        organization_id,
    )


def test_calls_on_a_locked_row_end_at_their_deadline_and_stall_nothing_else(
    serve: Serve, fault_db: FaultDatabase
) -> None:
    findings = Findings()
    served = serve()
    caller = served.caller
    locked = caller.create_org("Locked")
    other = caller.create_org("Other")
    row_before = organization_row(fault_db, locked.id)
    updates_before = recorded_updates(fault_db, locked.id)
    renames = [rename_org(locked.id, f"Late {i}") for i in range(LOCKED_CALLS)]

    with ThreadPoolExecutor(LOCKED_CALLS + 4) as pool:
        with fault_db.row_locked(locked.id):
            blocked = [
                pool.submit(caller, "UpdateOrganization", rename, DEADLINE) for rename in renames
            ]
            wait_for_lock_waiters(fault_db, 1, timeout=DEADLINE)
            # While they wait: everything else answers at once.
            unrelated = {
                "GetOrganization (another org)": pool.submit(
                    caller, "GetOrganization", get_org(other.id), 5
                ),
                "UpdateOrganization (another org)": pool.submit(
                    caller, "UpdateOrganization", rename_org(other.id, "Other renamed"), 5
                ),
                "Health/Check liveness": pool.submit(caller.health, LIVENESS),
                "Health/Check readiness": pool.submit(caller.health, READINESS),
            }
            answers = {name: future.result() for name, future in unrelated.items()}
            still_waiting = sum(not future.done() for future in blocked)
            outcomes = [future.result() for future in blocked]  # ends by their deadline
        # The lock is released only now, after every client gave up: a server that let a
        # call run on would commit it now.
        try:
            poll(lambda: fault_db.busy_sessions() == 0, 5, "the service's transactions to end")
        except TimeoutError:
            findings.expect(False, "the service's transactions still ran 5 s after the lock")

    findings.figure(
        f"slowest locked call (deadline {DEADLINE:.1f}s)", max(o.seconds for o in outcomes)
    )
    findings.figure("slowest unrelated call meanwhile", max(a.seconds for a in answers.values()))
    late = [
        outcome
        for outcome in outcomes
        if outcome.code != grpc.StatusCode.DEADLINE_EXCEEDED or outcome.seconds >= DEADLINE + MARGIN
    ]
    findings.expect(
        not late,
        f"calls on the locked row must end DEADLINE_EXCEEDED within {DEADLINE + MARGIN:.1f}s:\n"
        + summary(outcomes),
    )
    findings.expect(
        still_waiting == LOCKED_CALLS,
        f"only {still_waiting} of {LOCKED_CALLS} locked calls still waited when the "
        "unrelated calls had answered (the checks below were not made while they waited)",
    )
    for name, answer in answers.items():
        findings.expect(
            answer.code == grpc.StatusCode.OK and answer.seconds < QUICK,
            f"{name} while {LOCKED_CALLS} calls waited on a lock: {answer} "
            f"(must be OK within {QUICK}s)",
        )
    findings.expect(
        organization_row(fault_db, locked.id) == row_before,
        f"an update that timed out was committed: {row_before} became "
        f"{organization_row(fault_db, locked.id)}",
    )
    updates_after = recorded_updates(fault_db, locked.id)
    findings.expect(
        updates_after == updates_before,
        f"{updates_after - updates_before} 'organization.updated' audit events were written "
        "by updates whose clients had given up",
    )
    findings.assert_none()
