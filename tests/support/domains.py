"""Helpers for tests that need domains: fresh names and verification through the
session's DNS server."""

from __future__ import annotations

import uuid

from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Client
from tests.support.dns_server import LocalDnsServer


def new_domain(suffix: str = "example") -> str:
    """A domain name no other test uses."""
    return f"d{uuid.uuid4().hex[:12]}.{suffix}"


def create_domain(client: Client, organization_id: str, name: str) -> pb.Domain:
    request = rpc.CreateDomainRequest(organization_id=organization_id, name=name)
    return client.CreateDomain(request).domain


def verify_domain(client: Client, organization_id: str, name: str) -> pb.Domain:
    request = rpc.VerifyDomainRequest(organization_id=organization_id, name=name)
    return client.VerifyDomain(request).domain


def publish_challenge(dns: LocalDnsServer, domain: pb.Domain) -> None:
    dns.publish(domain.verification_record_name, domain.verification_record_value)


def verified_domain(
    client: Client, dns: LocalDnsServer, organization_id: str, name: str | None = None
) -> pb.Domain:
    """Claims `name` (default: a fresh one), publishes its challenge and verifies it."""
    domain = create_domain(client, organization_id, name or new_domain())
    publish_challenge(dns, domain)
    verified = verify_domain(client, organization_id, domain.name)
    assert verified.state == pb.DOMAIN_STATE_VERIFIED
    return verified
