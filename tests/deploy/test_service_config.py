"""deploy/service-config.json: its policy, grpc accepts it, and retries and deadlines
behave as the README says, against a real orgservice and a gRPC server scripted to fail."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc
from orgs.v1 import resources_pb2

from tests.deploy.conftest import DEPLOY
from tests.deploy.conftest import SERVICE
from tests.e2e.conftest import ServiceProcess

SERVICE_CONFIG = (DEPLOY / "service-config.json").read_text()
HOT_READS = {"CheckPermission", "GetOrganization"}


def configured_channel(port: int, service_config: str = SERVICE_CONFIG) -> grpc.Channel:
    """A channel set up the way the README tells clients to."""
    return grpc.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.service_config", service_config), ("grpc.enable_retries", 1)],
    )


def method_configs() -> list[dict[str, Any]]:
    configs: list[dict[str, Any]] = json.loads(SERVICE_CONFIG)["methodConfig"]
    return configs


def seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def test_every_service_method_retries_unavailable_only() -> None:
    service_configs = [
        config
        for config in method_configs()
        if any(name["service"] == SERVICE for name in config["name"])
    ]
    assert service_configs
    for config in service_configs:
        policy = config["retryPolicy"]
        # Other codes may come after the server did the work (or never succeed on retry).
        assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
        assert 4 <= policy["maxAttempts"] <= 5
        assert policy["backoffMultiplier"] > 1
        assert seconds(policy["initialBackoff"]) < seconds(policy["maxBackoff"])


def test_hot_reads_have_shorter_deadlines_than_the_default() -> None:
    timeouts: dict[str, float] = {}
    for config in method_configs():
        for name in config["name"]:
            if name["service"] == SERVICE:
                timeouts[name.get("method", "")] = seconds(config["timeout"])
    assert set(timeouts) == {"", *HOT_READS}
    assert all(timeouts[method] < timeouts[""] for method in HOT_READS)


def test_health_checks_are_not_retried() -> None:
    (health,) = [
        config
        for config in method_configs()
        if config["name"] == [{"service": "grpc.health.v1.Health"}]
    ]
    assert "retryPolicy" not in health


def test_grpc_accepts_the_config_on_a_real_orgservice(server: ServiceProcess) -> None:
    token = server.token("service-config-user")
    with configured_channel(server.port) as channel:
        stub = rpc_grpc.OrganizationServiceStub(channel)
        reply = stub.GetCurrentUser(
            rpc.GetCurrentUserRequest(), metadata=(("authorization", f"Bearer {token}"),)
        )
    assert reply.user.id


def test_grpc_rejects_an_invalid_config(server: ServiceProcess) -> None:
    """The control for the test above: grpc does check the config it is given."""
    broken = SERVICE_CONFIG.replace('"timeout": "5s"', '"timeout": "5 seconds"')
    assert broken != SERVICE_CONFIG
    with configured_channel(server.port, broken) as channel:
        stub = rpc_grpc.OrganizationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetCurrentUser(rpc.GetCurrentUserRequest(), timeout=5)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- the policy's effect, against a gRPC server that fails on purpose ------------------------

Respond = Callable[[int, grpc.ServicerContext], bytes]  # (attempt number, context) -> reply
StartScripted = Callable[[dict[str, Respond]], tuple[int, Counter[str]]]


@pytest.fixture
def scripted_server() -> Iterator[StartScripted]:
    """Starts servers whose OrganizationService methods answer as scripted:
    `start({method: respond})` returns the port and the attempts each method received."""
    servers: list[grpc.Server] = []

    def start(methods: dict[str, Respond]) -> tuple[int, Counter[str]]:
        attempts: Counter[str] = Counter()

        def handler(name: str, respond: Respond) -> grpc.RpcMethodHandler[bytes, bytes]:
            def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
                attempts[name] += 1
                return respond(attempts[name], context)

            return grpc.unary_unary_rpc_method_handler(handle)

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {name: handler(name, respond) for name, respond in methods.items()}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return port, attempts

    yield start
    for server in servers:
        server.stop(grace=None)


def failing_until(attempt_that_succeeds: int, code: grpc.StatusCode, reply: bytes) -> Respond:
    def respond(attempt: int, context: grpc.ServicerContext) -> bytes:
        if attempt < attempt_that_succeeds:
            context.abort(code, "scripted failure")
        return reply

    return respond


def stall_until_cancelled(attempt: int, context: grpc.ServicerContext) -> bytes:
    limit = time.monotonic() + 10
    while context.is_active() and time.monotonic() < limit:
        time.sleep(0.01)
    return b""


def test_unavailable_is_retried_until_an_attempt_succeeds(scripted_server: StartScripted) -> None:
    reply = rpc.GetCurrentUserResponse(user=resources_pb2.User(id="user-1"))
    respond = failing_until(3, grpc.StatusCode.UNAVAILABLE, reply.SerializeToString())
    port, attempts = scripted_server({"GetCurrentUser": respond})
    with configured_channel(port) as channel:
        stub = rpc_grpc.OrganizationServiceStub(channel)
        assert stub.GetCurrentUser(rpc.GetCurrentUserRequest()).user.id == "user-1"
    assert attempts["GetCurrentUser"] == 3


def test_retries_stop_after_max_attempts(scripted_server: StartScripted) -> None:
    (default,) = [config for config in method_configs() if config["name"] == [{"service": SERVICE}]]
    respond = failing_until(100, grpc.StatusCode.UNAVAILABLE, b"")
    port, attempts = scripted_server({"ListMembers": respond})
    with configured_channel(port) as channel, pytest.raises(grpc.RpcError) as raised:
        rpc_grpc.OrganizationServiceStub(channel).ListMembers(rpc.ListMembersRequest())
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert attempts["ListMembers"] == default["retryPolicy"]["maxAttempts"]


def test_other_codes_are_not_retried(scripted_server: StartScripted) -> None:
    respond = failing_until(2, grpc.StatusCode.ABORTED, b"")
    port, attempts = scripted_server({"CreateOrganization": respond})
    with configured_channel(port) as channel:
        stub = rpc_grpc.OrganizationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.CreateOrganization(rpc.CreateOrganizationRequest(name="Acme"))
    assert raised.value.code() == grpc.StatusCode.ABORTED
    assert attempts["CreateOrganization"] == 1


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="grpcio applies service-config timeouts 1-2 s early (grpc/grpc#34547), so a 1 s "
    "timeout fails at once; the README's Python example drops them. When this passes, "
    "grpcio is fixed: remove the mark and that workaround.",
)
def test_hot_reads_get_their_deadline_without_a_client_timeout(
    scripted_server: StartScripted,
) -> None:
    port, _ = scripted_server({"GetOrganization": stall_until_cancelled})
    with configured_channel(port) as channel:
        stub = rpc_grpc.OrganizationServiceStub(channel)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetOrganization(rpc.GetOrganizationRequest())
        elapsed = time.monotonic() - started
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.9 <= elapsed < 3.0  # the method's 1 s, not the service default of 5 s
