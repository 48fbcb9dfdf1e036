"""The database goes away (shut down, or hung with every process stopped) and comes back:
calls fail fast with UNAVAILABLE, readiness follows the database, liveness does not, the
log stays calm, and the same process serves again once the database answers."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2

from tests.e2e.conftest import ServiceProcess
from tests.e2e.conftest import orgservice
from tests.e2e.conftest import service_env
from tests.faults.conftest import Caller
from tests.faults.conftest import FaultDatabase
from tests.faults.conftest import Findings
from tests.faults.conftest import Outcome
from tests.faults.conftest import Serve
from tests.faults.conftest import Served
from tests.faults.conftest import create_org
from tests.faults.conftest import excerpt
from tests.faults.conftest import frozen
from tests.faults.conftest import get_org
from tests.faults.conftest import rename_org
from tests.faults.conftest import stopped
from tests.faults.conftest import summary
from tests.support.pgcluster import PgCluster
from tests.support.pgcluster import StopMode
from tests.support.processes import free_port
from tests.support.processes import poll

pytestmark = [pytest.mark.faults, pytest.mark.postgres_only]

DOWN = grpc.StatusCode.UNAVAILABLE
DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
OUTAGE_SECONDS = 3.0  # how long the tests keep calling a database that is away
ANSWER_LIMIT = 3.0  # "within 2 s", with a margin
DATABASE_WAIT_SECONDS = 3


def some_calls(caller: Caller, organization: resources_pb2.Organization) -> list[Outcome]:
    """A read, a write, an update and a list, one after the other."""
    return [
        caller("GetOrganization", get_org(organization.id)),
        caller("CreateOrganization", create_org(f"During outage {time.monotonic()}")),
        caller("UpdateOrganization", rename_org(organization.id, "Renamed during outage")),
        caller("ListOrganizations", rpc.ListOrganizationsRequest()),
    ]


def keep_calling(
    served: Served, organization: resources_pb2.Organization, until: float
) -> list[Outcome]:
    """Calls in rounds of four concurrent ones until `until` (monotonic)."""
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(4) as pool:
        while time.monotonic() < until:
            rounds = [pool.submit(some_calls, served.caller, organization) for _ in range(4)]
            outcomes += [outcome for future in rounds for outcome in future.result()]
            time.sleep(0.2)
    return outcomes


def seconds_until_calls_succeed(served: Served, since: float, timeout: float = 10) -> float | None:
    """Polls GetCurrentUser with a 1 s deadline until one succeeds (None: none did)."""
    while time.monotonic() < since + timeout:
        outcome = served.caller("GetCurrentUser", rpc.GetCurrentUserRequest(), timeout=1)
        if outcome.code == grpc.StatusCode.OK:
            return time.monotonic() - since
        time.sleep(0.05)
    return None


def expect_liveness_held(findings: Findings, served: Served, since: float) -> None:
    samples = served.health.since(since)
    findings.expect(bool(samples), "no health answer at all during the outage")
    findings.expect(
        all(sample.liveness == "SERVING" for sample in samples),
        "liveness must stay SERVING while the database is away:\n" + served.health.describe(since),
    )


def expect_readiness_lost(findings: Findings, served: Served, since: float) -> None:
    lost = served.health.first(lambda s: s.readiness == "NOT_SERVING", since, timeout=5)
    findings.expect_within(
        lost, ANSWER_LIMIT, "readiness NOT_SERVING", served.health.describe(since)
    )


def expect_recovery(findings: Findings, served: Served) -> None:
    """The same process serves again within 2 s (+ margin) of the database answering."""
    back = time.monotonic()
    ready = served.health.first(lambda s: s.readiness == "SERVING", back, timeout=10)
    findings.expect_within(
        ready, ANSWER_LIMIT, "readiness SERVING again", served.health.describe(back)
    )
    calls = seconds_until_calls_succeed(served, back)
    findings.expect_within(calls, ANSWER_LIMIT, "first successful call after recovery", "")
    findings.expect(
        served.service.process.poll() is None,
        f"the service exited (code {served.service.process.returncode}); it must not restart",
    )


# -- the log during an outage -------------------------------------------------------------

_WARNING = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) WARNING \S+ (\S+): (.*)$")
_VARYING = re.compile(r"[0-9a-f]{8,}|\d+")  # ids, ports, durations differ within a kind


def log_problems(log: str) -> list[str]:
    """What is wrong with the log of an outage: it needs at least one WARNING, no
    traceback, and per kind of WARNING (logger and message, numbers masked) at most one
    line per second. Access lines are not counted: the contract wants one per RPC."""
    if "Traceback" in log:
        return [f"a traceback in the log during the outage:\n{excerpt(log)}"]
    problems, too_often = [], []
    last_of_kind: dict[str, datetime] = {}
    for line in log.splitlines():
        if " WARNING " not in line:
            continue
        match = _WARNING.match(line)
        if match is None:
            problems.append(f"a WARNING line in an unexpected format: {line!r}")
            continue
        logged = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
        logger, message = match[2], match[3]
        if logger == "orgservice.access":
            continue
        kind = f"{logger}: {_VARYING.sub('#', message)}"
        previous = last_of_kind.get(kind)
        if previous is not None and (logged - previous).total_seconds() < 0.95:
            too_often.append(line)
        last_of_kind[kind] = logged
    if not last_of_kind:
        problems.append(f"no WARNING about the outage in the log:\n{excerpt(log)}")
    if too_often:
        problems.append(
            f"{len(too_often)} WARNING lines within a second of one of their kind:\n"
            + "\n".join(too_often[:10])
        )
    return problems


def expect_unavailable_fast(findings: Findings, outcomes: list[Outcome]) -> None:
    unavailable = [outcome.seconds for outcome in outcomes if outcome.code == DOWN]
    findings.figure("slowest UNAVAILABLE answer while down", max(unavailable, default=None))
    wrong = [
        outcome
        for outcome in outcomes
        if outcome.code != DOWN
        or outcome.reason != DATABASE_UNAVAILABLE
        or outcome.seconds >= ANSWER_LIMIT
    ]
    findings.expect(
        not wrong,
        f"{len(wrong)} of {len(outcomes)} calls did not end UNAVAILABLE with reason "
        f"{DATABASE_UNAVAILABLE} within {ANSWER_LIMIT:.0f}s:\n{summary(wrong[:12])}",
    )


# -- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_stopped_database_means_unavailable_until_it_returns(
    serve: Serve, own_postgres: PgCluster, mode: StopMode
) -> None:
    findings = Findings()
    served = serve()
    organization = served.caller.create_org()
    log_start = len(served.service.stderr())

    # slow: keeps calling for OUTAGE_SECONDS while the database is down
    with stopped(own_postgres, mode) as down:
        outcomes = some_calls(served.caller, organization)
        outcomes += keep_calling(served, organization, until=down + OUTAGE_SECONDS)
        expect_readiness_lost(findings, served, since=down)
        expect_liveness_held(findings, served, since=down)
        outage_log = served.service.stderr()[log_start:]

    expect_unavailable_fast(findings, outcomes)
    for problem in log_problems(outage_log):
        findings.expect(False, problem)
    expect_recovery(findings, served)
    findings.assert_none()


def test_frozen_database_ends_calls_within_their_budget(
    serve: Serve, own_postgres: PgCluster
) -> None:
    findings = Findings()
    budget = 2.0
    served = serve(env={"ORGSERVICE_MAX_CALL_SECONDS": str(budget)})
    organization = served.caller.create_org()
    requests: list[tuple[str, Message]] = [
        ("GetOrganization", get_org(organization.id)),
        ("CreateOrganization", create_org("While frozen")),
        ("UpdateOrganization", rename_org(organization.id, "Renamed while frozen")),
        ("GetCurrentUser", rpc.GetCurrentUserRequest()),
    ]

    # slow: waits out the call budget while every PostgreSQL process is stopped
    with ThreadPoolExecutor(len(requests)) as pool, frozen(own_postgres) as froze:
        # The client allows 5 s; the server's budget of 2 s must end the calls first.
        outcomes = list(pool.map(lambda call: served.caller(call[0], call[1], 5), requests))
        expect_readiness_lost(findings, served, since=froze)
        expect_liveness_held(findings, served, since=froze)

    wrong = [
        outcome
        for outcome in outcomes
        if outcome.code not in {DOWN, grpc.StatusCode.DEADLINE_EXCEEDED}
        or (outcome.code == DOWN and outcome.reason != DATABASE_UNAVAILABLE)
        or outcome.seconds >= budget + 1
    ]
    findings.expect(
        not wrong,
        f"calls on a hung database must end UNAVAILABLE ({DATABASE_UNAVAILABLE}) or "
        f"DEADLINE_EXCEEDED within the {budget:.0f}s budget (+1 s):\n{summary(outcomes)}",
    )
    expect_recovery(findings, served)
    findings.assert_none()


def test_start_gives_up_when_the_database_stays_down(
    own_postgres: PgCluster, fault_db: FaultDatabase, tmp_path: Path
) -> None:
    env = service_env(tmp_path / "key", ORGSERVICE_DATABASE_WAIT_SECONDS=str(DATABASE_WAIT_SECONDS))
    command = ["serve", "--dev", "--port", str(free_port()), "--database-url", fault_db.url]
    # slow: the server waits DATABASE_WAIT_SECONDS for the database
    with stopped(own_postgres, "fast"):
        started = time.monotonic()
        result = orgservice(*command, env=env, cwd=tmp_path, timeout=30)
        elapsed = time.monotonic() - started

    findings = Findings()
    findings.expect(result.returncode == 1, f"exit code {result.returncode}, not 1")
    findings.expect(
        DATABASE_WAIT_SECONDS - 0.5 < elapsed < DATABASE_WAIT_SECONDS + 2.5,
        f"gave up after {elapsed:.2f}s, not after about {DATABASE_WAIT_SECONDS}s",
    )
    lines = result.stderr.strip().splitlines()
    findings.expect("Traceback" not in result.stderr, "a traceback")
    # One line per attempt, then the final one naming the problem.
    findings.expect(len(lines) >= 2, "expected a line per attempt and a final line")
    findings.expect(all(len(line) <= 300 for line in lines), "lines over 300 characters")
    findings.expect(bool(lines) and "database" in lines[-1].lower(), "final line names no database")
    findings.expect(not findings.problems, f"stderr was:\n{excerpt(result.stderr)}")
    findings.assert_none()


def test_start_waits_for_a_database_that_comes_late(serve: Serve, own_postgres: PgCluster) -> None:
    own_postgres.stop()

    def start_database_after_a_failed_attempt(service: ServiceProcess) -> None:
        # Only a database that comes after serve has tried (and logged the attempt)
        # shows that serve waits; process start-up alone can take a second.
        poll(
            lambda: bool(service.stderr().strip()) or service.process.poll() is not None,
            30,
            "serve to log its first attempt",
        )
        time.sleep(1)
        assert service.process.poll() is None, (
            f"serve gave up on the database; stderr:\n{excerpt(service.stderr())}"
        )
        own_postgres.start()

    served = serve(
        env={"ORGSERVICE_DATABASE_WAIT_SECONDS": "20"},
        while_starting=start_database_after_a_failed_attempt,
    )
    assert served.caller.create_org("Came late").name == "Came late"
    assert "Traceback" not in served.service.stderr(), excerpt(served.service.stderr())
