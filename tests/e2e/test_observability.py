"""Observability of a real `orgservice serve` process (OPERATIONS.md "Observability"):
Prometheus metrics scraped over HTTP (one process, and the sum over `--workers 2`),
OpenTelemetry spans from the console exporter, and JSON log lines."""

from __future__ import annotations

import json
import re
import secrets
import socket
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc

from tests.e2e.conftest import SERVICE
from tests.e2e.conftest import ServiceProcess
from tests.e2e.conftest import StartService
from tests.e2e.conftest import grpcurl_list
from tests.e2e.conftest import orgservice
from tests.e2e.conftest import service_env
from tests.e2e.conftest import wait_until
from tests.e2e.prometheus import Samples
from tests.e2e.prometheus import scrape
from tests.e2e.prometheus import scrape_when
from tests.e2e.prometheus import value
from tests.support.processes import free_port
from tests.support.processes import port_is_open

CALL_TIMEOUT = 10.0
OK, NOT_FOUND, UNAUTHENTICATED = (
    grpc.StatusCode.OK,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED,
)


@pytest.fixture(autouse=True)
def _no_otel_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers inherit this environment: tracing settings of the machine running
    the tests must not change what they print."""
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)


# -- calls ------------------------------------------------------------------------------------


@contextmanager
def connection(port: int) -> Iterator[rpc_grpc.OrganizationServiceStub]:
    """A stub on a TCP connection of its own (channels otherwise share connections, and
    with --workers each connection is served by one worker)."""
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
    )
    try:
        yield rpc_grpc.OrganizationServiceStub(channel)
    finally:
        channel.close()


def outcome(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return OK


def bearer(token: str, **more: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"), *more.items())


# -- metrics ----------------------------------------------------------------------------------


def rpc_labels(method: str, **more: str) -> dict[str, str]:
    return {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": method, **more}


def handled(samples: Samples) -> dict[tuple[str, str], float]:
    """(method, code) -> count, for the OrganizationService calls only (health checks
    count too, but the tests do not control how many the readiness wait made)."""
    counts = {}
    for (name, labels), count in samples.items():
        label = dict(labels)
        if name == "grpc_server_handled_total" and label["grpc_service"] == SERVICE:
            assert label["grpc_type"] == "unary", label
            counts[label["grpc_method"], label["grpc_code"]] = count
    return counts


def assert_histogram(samples: Samples, method: str, count: int) -> None:
    labels = rpc_labels(method)
    assert value(samples, "grpc_server_handling_seconds_count", **labels) == count
    assert (value(samples, "grpc_server_handling_seconds_sum", **labels) or 0) > 0
    buckets = sorted(
        (float(dict(key)["le"]), number)
        for (name, key), number in samples.items()
        if name == "grpc_server_handling_seconds_bucket"
        and dict(key).get("grpc_method") == method
        and dict(key)["grpc_service"] == SERVICE
    )
    assert len(buckets) > 1
    assert buckets[0][0] < 0.001  # calls within a millisecond are told apart
    assert [number for _, number in buckets] == sorted(number for _, number in buckets)
    assert buckets[-1] == (float("inf"), count)


def test_metrics_count_calls_by_method_and_code(start_service: StartService) -> None:
    metrics_port = free_port()
    service = start_service("--metrics-port", str(metrics_port), "--threads", "3")
    token = service.mint("metrics-user")
    with connection(service.port) as stub:
        organization = stub.CreateOrganization(
            rpc.CreateOrganizationRequest(name="Metered"), metadata=bearer(token)
        ).organization
        before = scrape(metrics_port)
        for _ in range(3):
            stub.GetOrganization(
                rpc.GetOrganizationRequest(organization_id=organization.id),
                metadata=bearer(token),
                timeout=CALL_TIMEOUT,
            )
        unknown = rpc.GetOrganizationRequest(organization_id=str(uuid.uuid4()))
        for _ in range(2):
            assert outcome(lambda: stub.GetOrganization(unknown, metadata=bearer(token))) is (
                NOT_FOUND
            )
        no_token = rpc.GetCurrentUserRequest()
        for _ in range(4):
            assert outcome(lambda: stub.GetCurrentUser(no_token)) is UNAUTHENTICATED

    expected = {
        ("CreateOrganization", "OK"): 1,
        ("GetOrganization", "OK"): 3,
        ("GetOrganization", "NOT_FOUND"): 2,
        ("GetCurrentUser", "UNAUTHENTICATED"): 4,
    }
    samples = scrape_when(metrics_port, lambda s: handled(s) == expected, "the calls' counts")
    for method, started in (("CreateOrganization", 1), ("GetOrganization", 5)):
        assert value(samples, "grpc_server_started_total", **rpc_labels(method)) == started
        assert_histogram(samples, method, started)
    assert value(samples, "grpc_server_started_total", **rpc_labels("GetCurrentUser")) == 4

    assert value(samples, "orgservice_database_up") == 1
    assert value(samples, "orgservice_db_pool_size") == 3
    # Every connection the calls checked out went back (a leak would keep it above 0).
    scrape_when(metrics_port, lambda s: value(s, "orgservice_db_pool_in_use") == 0, "idle pool")
    # Repeated reads of one organization are answered from the read cache.
    for counter in ("orgservice_authz_cache_hits_total", "orgservice_authz_cache_misses_total"):
        assert (value(samples, counter) or 0) > (value(before, counter) or 0), counter


def access_lines_by_worker(service: ServiceProcess, calls: int) -> dict[str, int]:
    """Worker process name -> access lines it logged (the text format names the process),
    once the `calls` lines are written (a worker writes its lines in batches)."""
    workers = service.wait_for_stderr(r" (orgservice-worker-\d+) orgservice\.access: ", calls)
    return {name: workers.count(name) for name in set(workers)}


def test_workers_metrics_are_served_as_one_sum_by_the_parent(start_service: StartService) -> None:
    metrics_port = free_port()
    threads, workers = 2, 2
    service = start_service(
        *("--workers", str(workers), "--threads", str(threads)),
        *("--metrics-port", str(metrics_port)),
    )
    token = service.mint("workers-metrics-user")
    calls = 0
    # Each connection goes to one worker (SO_REUSEPORT): open connections until both
    # workers have served some.
    for _ in range(40):
        with connection(service.port) as stub:
            for _ in range(2):
                stub.GetCurrentUser(
                    rpc.GetCurrentUserRequest(), metadata=bearer(token), timeout=CALL_TIMEOUT
                )
                calls += 1
        if len(access_lines_by_worker(service, calls)) == workers:
            break
    served = access_lines_by_worker(service, calls)
    assert len(served) == workers, served
    assert sum(served.values()) == calls

    expected = {("GetCurrentUser", "OK"): calls}
    samples = scrape_when(metrics_port, lambda s: handled(s) == expected, f"{calls} calls")
    assert value(samples, "grpc_server_started_total", **rpc_labels("GetCurrentUser")) == calls
    assert_histogram(samples, "GetCurrentUser", calls)
    assert value(samples, "orgservice_database_up") == 1
    assert value(samples, "orgservice_db_pool_size") == threads * workers


@pytest.mark.parametrize("workers", [1, 2])
def test_a_metrics_port_in_use_ends_start_up_with_one_line(tmp_path: Path, workers: int) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics_port = taken.getsockname()[1]
        result = orgservice(
            *("serve", "--dev", "--port", str(port), "--workers", str(workers)),
            *("--metrics-port", str(metrics_port)),
            env=service_env(tmp_path / "key"),
            cwd=tmp_path,
        )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"orgservice: cannot serve metrics on 127.0.0.1:{metrics_port} ")
    assert "Traceback" not in result.stderr
    assert not port_is_open(port)  # no worker was left behind


# -- traces -----------------------------------------------------------------------------------


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed: indented JSON objects, each starting on a
    line of its own with "{" (the dev banner shares stdout)."""
    decoder = json.JSONDecoder()
    spans = []
    for start in re.finditer(r"^\{$", stdout, re.MULTILINE):
        span, _ = decoder.raw_decode(stdout, start.start())
        spans.append(span)
    return spans


def test_a_traceparent_is_continued_by_the_rpc_span_and_its_sql_spans(
    start_service: StartService,
) -> None:
    service = start_service(env={"OTEL_TRACES_EXPORTER": "console"})
    token = service.mint("traced-user")
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{trace_id}-{parent_id}-01"
    with connection(service.port) as stub:
        user = stub.GetCurrentUser(
            rpc.GetCurrentUserRequest(),
            metadata=bearer(token, traceparent=traceparent),
            timeout=CALL_TIMEOUT,
        ).user

    # Probes are not traced; their streams work with tracing on.
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=CALL_TIMEOUT
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()

    method = f"/{SERVICE}/GetCurrentUser"
    spans: list[dict[str, Any]] = []

    def rpc_span_printed() -> bool:
        nonlocal spans
        spans = [s for s in console_spans(service.stdout()) if s["context"]["trace_id"]]
        return any(span["name"] == method for span in spans)

    wait_until(rpc_span_printed, 10, "the RPC's span on stdout")
    ours = [span for span in spans if span["context"]["trace_id"] == f"0x{trace_id}"]
    [rpc_span] = [span for span in ours if span["name"] == method]
    assert rpc_span["kind"] == "SpanKind.SERVER"
    assert rpc_span["parent_id"] == f"0x{parent_id}"
    assert rpc_span["resource"]["attributes"]["service.name"] == "orgservice"
    assert not [span for span in spans if "grpc.health" in span["name"]]
    # The first call of a user provisions it: reads and inserts, each a span of its own.
    sql_spans = [span for span in ours if "db.statement" in span["attributes"]]
    # Named "<operation> <database>" by the SQLAlchemy instrumentation.
    operations = {span["name"].split()[0] for span in sql_spans}
    assert operations >= {"SELECT", "INSERT"}, sql_spans
    for span in sql_spans:
        assert span["parent_id"] == rpc_span["context"]["span_id"]
        assert span["kind"] == "SpanKind.CLIENT"

    [access] = service.wait_for_stderr(rf"orgservice\.access: method={method} code=OK .*$")
    assert f"user_id={user.id} " in access
    assert access.endswith(f" trace_id={trace_id}")


# -- logs -------------------------------------------------------------------------------------

LOG_FIELDS = {"time", "level", "logger", "message"}
PUBLIC_METHODS = ("/grpc.health.", "/grpc.reflection.")
ACCESS_FIELDS = {"method", "code", "duration_ms", "user_id", "correlation_id", "trace_id"}


def test_json_logs_carry_access_fields_and_never_a_token(start_service: StartService) -> None:
    # DEBUG: the most the service ever logs, and the level health checks are logged at.
    service = start_service("--log-format", "json", "--log-level", "DEBUG")
    token = service.mint("logged-user")
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    with connection(service.port) as stub:
        user = stub.GetCurrentUser(
            rpc.GetCurrentUserRequest(),
            metadata=bearer(token, **{"x-request-id": "req-json-1"}),
            timeout=CALL_TIMEOUT,
        ).user
        rejected = outcome(
            lambda: stub.GetCurrentUser(
                rpc.GetCurrentUserRequest(),
                metadata=bearer(forged, **{"x-request-id": "req-json-2"}),
                timeout=CALL_TIMEOUT,
            )
        )
        assert rejected is UNAUTHENTICATED
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE),
            metadata=(("x-request-id", "req-health"),),
            timeout=CALL_TIMEOUT,
        )
    assert SERVICE in grpcurl_list(service.port)  # server reflection
    service.wait_for_stderr(r'"correlation_id": "req-health"')
    service.wait_for_stderr(r'"method": "/grpc\.reflection\.')

    lines = service.stderr().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert record.keys() >= LOG_FIELDS, record
    for secret in (token, signature, forged, signature[::-1]):
        assert not [line for line in lines if secret in line]

    access = {r["correlation_id"]: r for r in records if r["logger"] == "orgservice.access"}
    for record in access.values():
        assert record.keys() >= ACCESS_FIELDS, record
        assert isinstance(record["duration_ms"], float | int)
    ok, refused, health = access["req-json-1"], access["req-json-2"], access["req-health"]
    assert (ok["level"], ok["code"], ok["user_id"]) == ("INFO", "OK", user.id)
    assert ok["method"] == f"/{SERVICE}/GetCurrentUser"
    assert (refused["level"], refused["code"], refused["user_id"]) == (
        "INFO",
        "UNAUTHENTICATED",
        "",
    )
    assert ok["trace_id"] == refused["trace_id"] == ""  # tracing is off by default
    assert (health["method"], health["code"]) == ("/grpc.health.v1.Health/Check", "OK")
    # Health and reflection calls are logged, but below INFO: probes poll all day.
    public = [r for r in access.values() if r["method"].startswith(PUBLIC_METHODS)]
    assert {r["method"].split("/")[1] for r in public} >= {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert {r["level"] for r in public} == {"DEBUG"}
    # SQLite has no change notifications: nothing tries to listen for them.
    assert not [r for r in records if r["logger"] == "orgservice.storage.notifications"]
