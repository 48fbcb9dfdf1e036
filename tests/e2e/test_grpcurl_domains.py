"""The README's domain flow through the real server and grpcurl: `orgservice serve
--dns-resolver` pointed at a real DNS server, a domain claimed and verified, auto-join
turned on, and a colleague joining on their first call. On SQLite and PostgreSQL. And
`serve` refusing a resolver address it cannot use."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.conftest import ServiceProcess
from tests.e2e.conftest import free_port
from tests.e2e.conftest import orgservice
from tests.e2e.conftest import service_env
from tests.support.dns_server import LocalDnsServer


@pytest.fixture(scope="module")
def service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, dns_server: LocalDnsServer
) -> Iterator[ServiceProcess]:
    server = ServiceProcess(
        tmp_path_factory.mktemp("domains"),
        "--database-url",
        database_url,
        "--dns-resolver",
        dns_server.address,
    )
    try:
        yield server.start().wait_until_serving()
    finally:
        server.close()


def test_domain_flow(service: ServiceProcess, dns_server: LocalDnsServer) -> None:
    suffix = uuid.uuid4().hex[:8]
    domain_name = f"acme-{suffix}.example"
    alice = service.token(f"alice-{suffix}", email=f"alice@{domain_name}")
    org_id = service.call("CreateOrganization", {"name": "Acme"}, alice)["organization"]["id"]

    domain = service.call("CreateDomain", {"organization_id": org_id, "name": domain_name}, alice)[
        "domain"
    ]
    assert (domain["name"], domain["state"]) == (domain_name, "DOMAIN_STATE_PENDING")
    record_name = domain["verification_record_name"]
    assert record_name == f"_orgservice-challenge.{domain_name}"

    check = {"organization_id": org_id, "name": domain_name}
    missing = service.call_fails(grpc.StatusCode.FAILED_PRECONDITION, "VerifyDomain", check, alice)
    assert "DOMAIN_NOT_VERIFIED" in missing.stderr

    dns_server.publish(record_name, domain["verification_record_value"])
    verified = service.call("VerifyDomain", check, alice)["domain"]
    assert verified["state"] == "DOMAIN_STATE_VERIFIED"
    assert verified["verify_time"]

    update = {
        "organization": {
            "id": org_id,
            "settings": {"auto_join_role": "developer", "default_invitation_ttl": "172800s"},
        },
        "update_mask": {"paths": ["settings.auto_join_role", "settings.default_invitation_ttl"]},
    }
    settings = service.call("UpdateOrganization", update, alice)["organization"]["settings"]
    assert (settings["auto_join_role"], settings["default_invitation_ttl"]) == (
        "developer",
        "172800s",
    )

    bob = service.token(f"bob-{suffix}", email=f"bob@{domain_name}")
    me = service.call("GetCurrentUser", {}, bob)
    joined = {m["organization_id"]: m["role"] for m in me["memberships"]}
    assert joined[org_id] == "developer"

    listed = service.call("ListDomains", {"organization_id": org_id}, alice)["domains"]
    assert [d["name"] for d in listed] == [domain_name]
    service.call("DeleteDomain", check, alice)
    assert service.call("ListDomains", {"organization_id": org_id}, alice).get("domains") == []


@pytest.mark.parametrize("address", ["localhost:53", "127.0.0.1", "127.0.0.1:0", "[::1]:70000"])
def test_serve_refuses_a_malformed_dns_resolver(tmp_path: Path, address: str) -> None:
    result = orgservice(
        "serve",
        "--dev",
        "--port",
        str(free_port()),
        env=service_env(tmp_path / "key", ORGSERVICE_DNS_RESOLVER=address),
        cwd=tmp_path,
    )
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert "--dns-resolver / ORGSERVICE_DNS_RESOLVER" in line, line
