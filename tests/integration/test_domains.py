"""Domains (API.md, "Domains and membership policies"): claiming, DNS TXT verification
through a real DNS server (`dns_server`, the servers' --dns-resolver), one verified
holder per name, IDNA names, deletion and purge, and who may do what. On SQLite and
PostgreSQL (`api`); verification races also across two replicas on PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb
from sqlalchemy import text

from orgservice.storage.retention import purge
from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure
from tests.conftest import settings_for
from tests.conftest import start_api
from tests.support.dns_server import Failure
from tests.support.dns_server import LocalDnsServer
from tests.support.domains import create_domain
from tests.support.domains import new_domain
from tests.support.domains import publish_challenge
from tests.support.domains import verified_domain
from tests.support.domains import verify_domain
from tests.support.processes import free_port
from tests.support.processes import poll
from tests.support.races import outcomes_together
from tests.support.rpc_outcomes import outcome

Code = grpc.StatusCode
# VerifyDomain gives up on DNS 2 s after it starts (less a margin to answer: calls take
# about 1.96 s); the slack covers the client's side on a busy two-core machine.
DNS_BOUND_SECONDS = 2.0
SLACK_SECONDS = 0.1


@dataclass
class Org:
    owner: Client
    id: str

    def create(self, name: str) -> pb.Domain:
        return create_domain(self.owner, self.id, name)

    def verify(self, name: str, by: Client | None = None) -> pb.Domain:
        return verify_domain(by or self.owner, self.id, name)

    def list(self, by: Client | None = None) -> list[pb.Domain]:
        reply = (by or self.owner).ListDomains(rpc.ListDomainsRequest(organization_id=self.id))
        return list(reply.domains)

    def delete(self, name: str) -> None:
        self.owner.DeleteDomain(rpc.DeleteDomainRequest(organization_id=self.id, name=name))

    def add(self, client: Client, role: str) -> Client:
        self.owner.AddMember(
            rpc.AddMemberRequest(organization_id=self.id, user_id=client.user_id, role=role)
        )
        return client

    def actions(self) -> list[tuple[str, str]]:
        reply = self.owner.ListAuditEvents(
            rpc.ListAuditEventsRequest(organization_id=self.id, action="domain")
        )
        return [(event.action, event.target_id) for event in reply.events]


def new_org(api: Api) -> Org:
    owner = api.client()
    return Org(owner, owner.create_org().id)


@pytest.fixture
def org(api: Api) -> Org:
    return new_org(api)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = failure(call)
    return result, time.monotonic() - started


# --- claiming ----------------------------------------------------------------------------


def test_create_returns_a_pending_domain_with_its_challenge(org: Org) -> None:
    name = new_domain()
    domain = org.create(f"  {name.upper()}. ")
    assert (domain.organization_id, domain.name) == (org.id, name)
    assert domain.state == pb.DOMAIN_STATE_PENDING
    assert domain.verification_record_name == f"_orgservice-challenge.{name}"
    prefix = "orgservice-verification="
    assert domain.verification_record_value.startswith(prefix)
    assert len(domain.verification_record_value) >= len(prefix) + 32  # 128 random bits
    assert not domain.HasField("verify_time")
    assert domain.HasField("create_time")
    assert org.list() == [domain]
    assert org.actions() == [("domain.created", name)]


def test_names_are_stored_in_their_ascii_form(org: Org) -> None:
    label = f"bücher-{uuid.uuid4().hex[:6]}"
    domain = org.create(f"{label.upper()}.Example")
    ascii_label = label.encode("idna").decode()  # IDNA 2003 and 2008 agree on this one
    assert domain.name == f"{ascii_label}.example"
    assert domain.name.startswith("xn--")
    assert domain.verification_record_name == f"_orgservice-challenge.{domain.name}"
    # The Unicode and ASCII spellings name the same domain.
    exists = failure(lambda: org.create(f"{label}.example"))
    assert (exists.code, exists.reason) == (Code.ALREADY_EXISTS, "DOMAIN_EXISTS")
    assert org.list() == [domain]


@pytest.mark.parametrize(
    "name",
    [
        "",
        "localhost",  # one label
        "exa mple.com",
        "-bad.example",
        "bad-.example",
        "a..example",
        "under_score.example",
        "1.2.3.4",
        "example.com\x00",
        "x" * 64 + ".example",  # a label above 63 characters
        ".".join(["abcdefghi"] * 25) + ".example",  # 258 characters
        "ü" * 2000 + ".example",
    ],
)
def test_invalid_names_are_refused(org: Org, name: str) -> None:
    refused = failure(lambda: org.create(name))
    assert (refused.code, refused.violations) == (Code.INVALID_ARGUMENT, ["name"])


def test_names_hold_at_most_253_characters(org: Org) -> None:
    def name_of(length: int) -> str:
        first = uuid.uuid4().hex[:12] + "a" * 51
        last = "d" * (length - 200)  # 3 labels of 63, 4 dots and "example" make 200
        return f"{first}.{'b' * 63}.{'c' * 63}.{last}.example"

    longest = name_of(253)
    assert len(longest) == 253
    assert org.create(longest).name == longest
    refused = failure(lambda: org.create(name_of(254)))
    assert (refused.code, refused.violations) == (Code.INVALID_ARGUMENT, ["name"])
    # Its challenge record name would be too long for DNS: no such record can exist.
    unverified = failure(lambda: org.verify(longest))
    assert (unverified.code, unverified.reason) == (Code.FAILED_PRECONDITION, "DOMAIN_NOT_VERIFIED")


def test_the_same_name_twice_in_one_organization_is_refused(org: Org) -> None:
    name = new_domain()
    org.create(name)
    exists = failure(lambda: org.create(name))
    assert (exists.code, exists.reason) == (Code.ALREADY_EXISTS, "DOMAIN_EXISTS")


def test_other_organizations_may_claim_the_same_name(api: Api, org: Org) -> None:
    name = new_domain()
    first, second = org.create(name), new_org(api).create(name)
    assert first.verification_record_value != second.verification_record_value


def test_an_organization_holds_at_most_100_domains(org: Org) -> None:
    for _ in range(100):
        org.create(new_domain())
    limit = failure(lambda: org.create(new_domain()))
    assert (limit.code, limit.reason) == (Code.FAILED_PRECONDITION, "DOMAIN_LIMIT_REACHED")
    assert len(org.list()) == 100


# --- verification ------------------------------------------------------------------------


def test_verified_when_the_record_holds_the_value(org: Org, dns_server: LocalDnsServer) -> None:
    domain = org.create(new_domain())
    dns_server.publish(
        domain.verification_record_name,
        "v=spf1 -all",  # other TXT records at the name do not matter
        domain.verification_record_value,
    )
    verified = org.verify(domain.name)
    assert verified.state == pb.DOMAIN_STATE_VERIFIED
    assert verified.HasField("verify_time")
    assert org.list() == [verified]
    assert org.actions() == [("domain.verified", domain.name), ("domain.created", domain.name)]
    # Verifying again answers from the database, without asking DNS.
    asked = dns_server.queries[domain.verification_record_name]
    assert org.verify(domain.name) == verified
    assert dns_server.queries[domain.verification_record_name] == asked


def test_a_value_split_over_several_strings_counts(org: Org, dns_server: LocalDnsServer) -> None:
    domain = org.create(new_domain())
    value = domain.verification_record_value
    dns_server.publish(domain.verification_record_name, [value[:10], value[10:]])
    assert org.verify(domain.name).state == pb.DOMAIN_STATE_VERIFIED


def test_unicode_names_verify_through_their_ascii_record(
    org: Org, dns_server: LocalDnsServer
) -> None:
    unicode_name = f"münchen-{uuid.uuid4().hex[:6]}.example"
    domain = org.create(unicode_name)
    publish_challenge(dns_server, domain)  # published at the xn-- name
    assert org.verify(unicode_name).name == domain.name
    org.delete(unicode_name)
    assert org.list() == []


@pytest.mark.parametrize("record", ["missing", "wrong value", "other organization's value"])
def test_not_verified_without_the_expected_value(
    api: Api, org: Org, dns_server: LocalDnsServer, record: str
) -> None:
    domain = org.create(new_domain())
    if record == "wrong value":
        dns_server.publish(domain.verification_record_name, "orgservice-verification=nope")
    elif record == "other organization's value":
        other = new_org(api).create(domain.name)
        publish_challenge(dns_server, other)
    refused = failure(lambda: org.verify(domain.name))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "DOMAIN_NOT_VERIFIED")
    assert domain.verification_record_name in refused.message
    assert dns_server.queries[domain.verification_record_name] == 1
    assert org.list()[0].state == pb.DOMAIN_STATE_PENDING


@pytest.mark.parametrize("kind", [Failure.SERVFAIL, Failure.REFUSED])
def test_a_failing_resolver_is_unavailable(
    org: Org, dns_server: LocalDnsServer, kind: Failure
) -> None:
    domain = org.create(new_domain())
    dns_server.fail(domain.verification_record_name, kind)
    result, elapsed = timed(lambda: org.verify(domain.name))
    assert (result.code, result.reason) == (Code.UNAVAILABLE, "DNS_UNAVAILABLE")
    assert elapsed < 1.0
    assert org.list()[0].state == pb.DOMAIN_STATE_PENDING


def test_a_silent_resolver_is_unavailable_within_two_seconds(
    org: Org, dns_server: LocalDnsServer
) -> None:
    domain = org.create(new_domain())
    dns_server.fail(domain.verification_record_name, Failure.SILENT)
    result, elapsed = timed(lambda: org.verify(domain.name))
    assert (result.code, result.reason) == (Code.UNAVAILABLE, "DNS_UNAVAILABLE")
    assert dns_server.queries[domain.verification_record_name] >= 1
    assert DNS_BOUND_SECONDS - 0.5 < elapsed < DNS_BOUND_SECONDS + SLACK_SECONDS, elapsed


def test_a_shorter_call_deadline_shortens_the_wait(
    api: Api, org: Org, dns_server: LocalDnsServer
) -> None:
    domain = org.create(new_domain())
    dns_server.fail(domain.verification_record_name, Failure.SILENT)
    request = rpc.VerifyDomainRequest(organization_id=org.id, name=domain.name)
    metadata = (("authorization", f"Bearer {org.owner.token}"),)
    result, elapsed = timed(
        lambda: api.anonymous().VerifyDomain(request, metadata=metadata, timeout=1.2)
    )
    # UNAVAILABLE (the server gave up on DNS in time to say so), not DEADLINE_EXCEEDED.
    assert (result.code, result.reason) == (Code.UNAVAILABLE, "DNS_UNAVAILABLE")
    assert 0.8 < elapsed < 1.2, elapsed


@pytest.fixture(scope="module")
def api_with_resolver_down(database_url: str, dev_key_file: Path) -> Iterator[Api]:
    """A server whose --dns-resolver is a port nothing listens on."""
    settings = settings_for(database_url, dev_key_file, dns_resolver=f"127.0.0.1:{free_port()}")
    yield from start_api(settings)


def test_an_unreachable_resolver_is_unavailable_within_two_seconds(
    api_with_resolver_down: Api,
) -> None:
    org = new_org(api_with_resolver_down)
    domain = org.create(new_domain())
    result, elapsed = timed(lambda: org.verify(domain.name))
    assert (result.code, result.reason) == (Code.UNAVAILABLE, "DNS_UNAVAILABLE")
    assert elapsed < DNS_BOUND_SECONDS + SLACK_SECONDS, elapsed


def test_verifying_a_missing_domain(org: Org) -> None:
    missing = failure(lambda: org.verify(new_domain()))
    assert (missing.code, missing.reason) == (Code.NOT_FOUND, "DOMAIN_NOT_FOUND")
    invalid = failure(lambda: org.verify("not a domain"))
    assert (invalid.code, invalid.violations) == (Code.INVALID_ARGUMENT, ["name"])


# --- one verified holder per name ---------------------------------------------------------


def test_a_name_verified_elsewhere_is_taken(api: Api, dns_server: LocalDnsServer) -> None:
    first, second = new_org(api), new_org(api)
    name = verified_domain(first.owner, dns_server, first.id).name
    claim = second.create(name)
    publish_challenge(dns_server, claim)  # even with its own record published
    taken = failure(lambda: second.verify(name))
    assert (taken.code, taken.reason) == (Code.ALREADY_EXISTS, "DOMAIN_TAKEN")
    # Deleting the verified domain frees the name.
    first.delete(name)
    assert second.verify(name).state == pb.DOMAIN_STATE_VERIFIED
    assert [d.state for d in first.list()] == []


def test_a_deleted_organizations_verified_name_counts_until_purge(
    api: Api, dns_server: LocalDnsServer
) -> None:
    first, second = new_org(api), new_org(api)
    name = verified_domain(first.owner, dns_server, first.id).name
    first.owner.DeleteOrganization(rpc.DeleteOrganizationRequest(organization_id=first.id))
    publish_challenge(dns_server, second.create(name))
    taken = failure(lambda: second.verify(name))
    assert (taken.code, taken.reason) == (Code.ALREADY_EXISTS, "DOMAIN_TAKEN")

    with api.engine.connect() as connection:
        connection.execute(
            text("UPDATE organizations SET purge_time = :t WHERE id = :o"),
            {"t": datetime.now(UTC) - timedelta(seconds=1), "o": first.id},
        )
        connection.commit()
    assert api.on_server(lambda: purge(api.server.database, datetime.now(UTC))).organizations >= 1
    assert second.verify(name).state == pb.DOMAIN_STATE_VERIFIED


def check_one_winner(
    orgs: list[Org], dns_server: LocalDnsServer, rounds: int, pool: ThreadPoolExecutor
) -> None:
    """Each round, every organization publishes its record for one fresh name and
    verifies it at the same time. DNS answers after 0.2 s, so every verification gets
    past its first look (nobody holds the name yet) before any records the result: the
    registry insert decides the race."""
    for round_ in range(rounds):
        name = new_domain()
        records = [org.create(name).verification_record_value for org in orgs]
        record_name = f"_orgservice-challenge.{name}"
        dns_server.publish(record_name, *records, delay=0.2)
        results = outcomes_together([partial(org.verify, name) for org in orgs], pool=pool)
        where = f"round {round_}: {results}"
        assert dns_server.queries[record_name] == len(orgs), where  # all raced to the end
        assert results == {"OK": 1, "ALREADY_EXISTS/DOMAIN_TAKEN": len(orgs) - 1}, where
        states = [org.list()[0].state for org in orgs]
        assert states.count(pb.DOMAIN_STATE_VERIFIED) == 1, where


def test_concurrent_verifications_have_one_winner(api: Api, dns_server: LocalDnsServer) -> None:
    orgs = [new_org(api) for _ in range(3)]
    with ThreadPoolExecutor(len(orgs)) as pool:
        check_one_winner(orgs, dns_server, rounds=5, pool=pool)


@pytest.mark.postgres_only
def test_concurrent_verifications_across_replicas_have_one_winner(
    pg_api: Api, pg_api_peer: Api, dns_server: LocalDnsServer
) -> None:
    orgs = [new_org(pg_api), new_org(pg_api_peer), new_org(pg_api), new_org(pg_api_peer)]
    with ThreadPoolExecutor(len(orgs)) as pool:
        check_one_winner(orgs, dns_server, rounds=20, pool=pool)


# --- deletion -----------------------------------------------------------------------------


def test_delete(org: Org) -> None:
    name = org.create(new_domain()).name
    org.delete(name)
    assert org.list() == []
    assert org.actions()[0] == ("domain.deleted", name)
    missing = failure(lambda: org.delete(name))
    assert (missing.code, missing.reason) == (Code.NOT_FOUND, "DOMAIN_NOT_FOUND")


def test_list_is_oldest_first(org: Org, dns_server: LocalDnsServer) -> None:
    names = [new_domain() for _ in range(3)]
    for name in names:
        org.create(name)
    publish_challenge(dns_server, org.list()[1])
    org.verify(names[1])
    listed = org.list()
    assert [d.name for d in listed] == names
    assert [d.state for d in listed] == [
        pb.DOMAIN_STATE_PENDING,
        pb.DOMAIN_STATE_VERIFIED,
        pb.DOMAIN_STATE_PENDING,
    ]


# --- who may do what (the authorization matrix covers every caller kind) -----------------


def test_callers_without_domains_manage_cause_no_dns_query(
    api: Api, org: Org, dns_server: LocalDnsServer
) -> None:
    domain = org.create(new_domain())
    publish_challenge(dns_server, domain)
    viewer = org.add(api.client(), "viewer")
    outsider = api.client()
    denied = failure(lambda: org.verify(domain.name, by=viewer))
    hidden = failure(lambda: org.verify(domain.name, by=outsider))
    assert denied.code == Code.PERMISSION_DENIED
    assert (hidden.code, hidden.reason) == (Code.NOT_FOUND, "ORGANIZATION_NOT_FOUND")
    assert dns_server.queries[domain.verification_record_name] == 0
    assert org.list()[0].state == pb.DOMAIN_STATE_PENDING


def test_custom_roles_may_hold_the_domain_permissions(api: Api, org: Org) -> None:
    for name, permissions in (
        ("domain-reader", ["domains.list"]),
        ("domain-admin", ["domains.list", "domains.manage"]),
    ):
        org.owner.CreateRole(
            rpc.CreateRoleRequest(organization_id=org.id, name=name, permissions=permissions)
        )
    reader = org.add(api.client(), "domain-reader")
    manager = org.add(api.client(), "domain-admin")
    created = create_domain(manager, org.id, new_domain())
    assert org.list(by=reader) == [created]
    denied = failure(lambda: create_domain(reader, org.id, new_domain()))
    assert denied.code == Code.PERMISSION_DENIED


def test_waiting_for_dns_holds_up_no_other_change(org: Org, dns_server: LocalDnsServer) -> None:
    """VerifyDomain holds neither the organization's row lock nor the server's
    per-organization queue while DNS is silent."""
    domain = org.create(new_domain())
    dns_server.fail(domain.verification_record_name, Failure.SILENT)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(lambda: outcome(lambda: org.verify(domain.name)))
        poll(lambda: dns_server.queries[domain.verification_record_name] > 0, 5, "the query")
        started = time.monotonic()
        other = org.create(new_domain())
        org.owner.UpdateOrganization(
            rpc.UpdateOrganizationRequest(
                organization=pb.Organization(id=org.id, description="changed meanwhile"),
                update_mask={"paths": ["description"]},
            )
        )
        assert time.monotonic() - started < 0.5
        assert not waiting.done()
        assert waiting.result(timeout=10) == "UNAVAILABLE/DNS_UNAVAILABLE"
    assert other.state == pb.DOMAIN_STATE_PENDING
