"""Organization settings and the policies they drive (API.md, "Domains and membership
policies"): updating them, auto-join through a verified domain, invitations restricted
to verified domains, the member limit and the default invitation lifetime. On SQLite
and PostgreSQL (`api`); concurrent joins into a nearly full organization across two
replicas on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure
from tests.support.dns_server import LocalDnsServer
from tests.support.domains import new_domain
from tests.support.domains import verified_domain
from tests.support.races import outcomes_together

Code = grpc.StatusCode


def duration(delta: timedelta) -> Duration:
    value = Duration()
    value.FromTimedelta(delta)
    return value


@dataclass
class Org:
    api: Api
    owner: Client
    id: str

    def update(self, paths: list[str], by: Client | None = None, **fields: Any) -> pb.Organization:
        request = rpc.UpdateOrganizationRequest(
            organization=pb.Organization(id=self.id, **fields), update_mask=FieldMask(paths=paths)
        )
        return (by or self.owner).UpdateOrganization(request).organization

    def set(self, by: Client | None = None, **settings: Any) -> pb.OrganizationSettings:
        """Sets the named settings (only those)."""
        paths = [f"settings.{name}" for name in settings]
        return self.update(paths, by, settings=pb.OrganizationSettings(**settings)).settings

    def get(self) -> pb.Organization:
        request = rpc.GetOrganizationRequest(organization_id=self.id)
        return self.owner.GetOrganization(request).organization

    def add(self, client: Client, role: str = "viewer") -> Any:
        return self.owner.AddMember(
            rpc.AddMemberRequest(organization_id=self.id, user_id=client.user_id, role=role)
        )

    def invite(self, email: str, **fields: Any) -> rpc.CreateInvitationResponse:
        return self.owner.CreateInvitation(
            rpc.CreateInvitationRequest(
                organization_id=self.id, email=email, role="viewer", **fields
            )
        )

    def members(self) -> dict[str, str]:
        reply = self.owner.ListMembers(
            rpc.ListMembersRequest(organization_id=self.id, page_size=1000)
        )
        return {m.user.id: m.role for m in reply.members}

    def events(self, action: str) -> list[pb.AuditEvent]:
        request = rpc.ListAuditEventsRequest(organization_id=self.id, action=action)
        return list(self.owner.ListAuditEvents(request).events)


def new_org(api: Api) -> Org:
    owner = api.client()
    return Org(api, owner, owner.create_org().id)


@pytest.fixture
def org(api: Api) -> Org:
    return new_org(api)


def memberships(client: Client) -> dict[str, str]:
    """organization id -> role, from GetCurrentUser (which may auto-join)."""
    reply = client.GetCurrentUser(rpc.GetCurrentUserRequest())
    return {m.organization_id: m.role for m in reply.memberships}


def employee(api: Api, domain: str, *, verified: bool = True) -> Client:
    """A user who has not called yet, with an email at `domain`."""
    email = f"user-{uuid.uuid4().hex[:8]}@{domain}"
    return api.client(email=email, email_verified=verified)


# --- settings through UpdateOrganization --------------------------------------------------


def test_settings_default_to_off(org: Org) -> None:
    settings = org.get().settings
    assert settings == pb.OrganizationSettings()
    assert not settings.HasField("default_invitation_ttl")


def test_each_setting_has_its_own_mask_path(org: Org) -> None:
    assert org.set(auto_join_role="developer").auto_join_role == "developer"
    assert org.set(max_members=5).max_members == 5
    assert org.set(restrict_invitations_to_domains=True).restrict_invitations_to_domains
    changed = org.set(default_invitation_ttl=duration(timedelta(days=2)))
    assert changed.default_invitation_ttl.ToTimedelta() == timedelta(days=2)
    # One path leaves the others as they are.
    assert (changed.auto_join_role, changed.max_members) == ("developer", 5)
    events = org.events("organization.updated")
    assert events[0].details["fields"] == "settings.default_invitation_ttl"


def test_the_settings_path_replaces_all_four(org: Org) -> None:
    org.set(auto_join_role="developer", max_members=5)
    replaced = org.update(["settings"], settings=pb.OrganizationSettings(max_members=3)).settings
    assert replaced == pb.OrganizationSettings(max_members=3)


def test_an_empty_mask_updates_the_settings_the_request_sets(org: Org) -> None:
    org.set(auto_join_role="developer")
    updated = org.update([], settings=pb.OrganizationSettings(max_members=7))
    assert (updated.settings.auto_join_role, updated.settings.max_members) == ("developer", 7)


def test_clearing_the_default_ttl(org: Org) -> None:
    org.set(default_invitation_ttl=duration(timedelta(days=2)))
    cleared = org.update(["settings.default_invitation_ttl"], settings=pb.OrganizationSettings())
    assert not cleared.settings.HasField("default_invitation_ttl")


@pytest.mark.parametrize(
    ("settings", "reason", "field"),
    [
        ({"auto_join_role": "no-such-role"}, "UNKNOWN_ROLE", "settings.auto_join_role"),
        ({"auto_join_role": "owner"}, "INVALID_ARGUMENT", "settings.auto_join_role"),
        ({"max_members": -1}, "INVALID_ARGUMENT", "settings.max_members"),
        (
            {"default_invitation_ttl": duration(timedelta(days=31))},
            "INVALID_ARGUMENT",
            "settings.default_invitation_ttl",
        ),
        (
            {"default_invitation_ttl": duration(timedelta(0))},
            "INVALID_ARGUMENT",
            "settings.default_invitation_ttl",
        ),
        (
            {"default_invitation_ttl": Duration(seconds=1, nanos=-1)},
            "INVALID_ARGUMENT",
            "settings.default_invitation_ttl",
        ),
    ],
)
def test_invalid_settings(org: Org, settings: dict[str, Any], reason: str, field: str) -> None:
    refused = failure(lambda: org.set(**settings))
    assert (refused.code, refused.reason, refused.violations) == (
        Code.INVALID_ARGUMENT,
        reason,
        [field],
    )


@pytest.mark.parametrize("path", ["settings.nope", "public_metadata.key", "settings.max_members.x"])
def test_unknown_nested_mask_paths(org: Org, path: str) -> None:
    refused = failure(lambda: org.update([path]))
    assert (refused.code, refused.violations) == (Code.INVALID_ARGUMENT, ["update_mask"])


def test_setting_an_auto_join_role_is_granting_it(api: Api, org: Org) -> None:
    org.owner.CreateRole(
        rpc.CreateRoleRequest(
            organization_id=org.id, name="settings-editor", permissions=["organizations.update"]
        )
    )
    editor = api.client()
    org.add(editor, "settings-editor")
    denied = failure(lambda: org.set(by=editor, auto_join_role="admin"))
    assert denied.code == Code.PERMISSION_DENIED
    assert org.set(by=editor, auto_join_role="settings-editor").auto_join_role == (
        "settings-editor"
    )


def test_the_auto_join_role_cannot_be_deleted(org: Org) -> None:
    org.owner.CreateRole(
        rpc.CreateRoleRequest(organization_id=org.id, name="joiner", permissions=[])
    )
    org.set(auto_join_role="joiner")
    delete = rpc.DeleteRoleRequest(organization_id=org.id, name="joiner")
    in_use = failure(lambda: org.owner.DeleteRole(delete))
    assert (in_use.code, in_use.reason) == (Code.FAILED_PRECONDITION, "ROLE_IN_USE")
    org.set(auto_join_role="")
    org.owner.DeleteRole(delete)


# --- auto-join ------------------------------------------------------------------------------


@pytest.fixture
def joinable(org: Org, dns_server: LocalDnsServer) -> tuple[Org, str]:
    """An organization with a verified domain and auto-join as developer."""
    domain = verified_domain(org.owner, dns_server, org.id).name
    org.set(auto_join_role="developer")
    return org, domain


def test_new_users_join_when_provisioned(api: Api, joinable: tuple[Org, str]) -> None:
    org, domain = joinable
    user = employee(api, domain)
    # Any first call provisions the user, and the join happens then.
    user.ListOrganizations(rpc.ListOrganizationsRequest())
    assert org.members()[user.user_id] == "developer"
    (event,) = org.events("member.auto_joined")
    assert (event.actor_user_id, event.target_id) == (user.user_id, user.user_id)
    assert (event.details["role"], event.details["domain"]) == ("developer", domain)
    assert org.get().member_count == 2


def test_existing_users_join_on_get_current_user(
    api: Api, org: Org, dns_server: LocalDnsServer
) -> None:
    domain = new_domain()
    user = employee(api, domain)
    assert org.id not in memberships(user)  # provisioned before the domain was verified
    verified_domain(org.owner, dns_server, org.id, domain)
    org.set(auto_join_role="viewer")
    assert memberships(user)[org.id] == "viewer"


def test_only_verified_emails_of_the_exact_domain_join(api: Api, joinable: tuple[Org, str]) -> None:
    org, domain = joinable
    unverified = employee(api, domain, verified=False)
    subdomain = employee(api, f"eu.{domain}")
    lookalike = employee(api, f"{domain}.evil.example")
    for user in (unverified, subdomain, lookalike):
        assert org.id not in memberships(user)
    assert len(org.members()) == 1


def test_unicode_email_domains_match_their_ascii_form(
    api: Api, org: Org, dns_server: LocalDnsServer
) -> None:
    label = f"zürich-{uuid.uuid4().hex[:6]}"
    verified_domain(org.owner, dns_server, org.id, f"{label}.example")
    org.set(auto_join_role="viewer")
    user = employee(api, f"{label.upper()}.EXAMPLE")
    assert memberships(user)[org.id] == "viewer"


def test_auto_join_happens_once(api: Api, joinable: tuple[Org, str]) -> None:
    org, domain = joinable
    leaver, removed = employee(api, domain), employee(api, domain)
    for user in (leaver, removed):
        assert org.id in memberships(user)
    leaver.RemoveMember(rpc.RemoveMemberRequest(organization_id=org.id, user_id=leaver.user_id))
    org.owner.RemoveMember(rpc.RemoveMemberRequest(organization_id=org.id, user_id=removed.user_id))
    for _call in range(2):
        assert org.id not in memberships(leaver)
        assert org.id not in memberships(removed)
    assert len(org.events("member.auto_joined")) == 2
    # Invitations still work for them.
    org.add(leaver)
    assert memberships(leaver)[org.id] == "viewer"


def test_no_auto_join_while_off(api: Api, joinable: tuple[Org, str]) -> None:
    org, domain = joinable
    org.set(auto_join_role="")
    assert org.id not in memberships(employee(api, domain))


def test_a_full_organization_is_skipped_until_a_seat_frees(
    api: Api, joinable: tuple[Org, str]
) -> None:
    org, domain = joinable
    org.set(max_members=2)
    assert org.id in memberships(employee(api, domain))
    waiting = employee(api, domain)
    assert org.id not in memberships(waiting)  # the call succeeds, without joining
    org.set(max_members=3)
    assert memberships(waiting)[org.id] == "developer"


def test_no_auto_join_into_a_deleted_organization(api: Api, joinable: tuple[Org, str]) -> None:
    org, domain = joinable
    org.owner.DeleteOrganization(rpc.DeleteOrganizationRequest(organization_id=org.id))
    user = employee(api, domain)
    assert org.id not in memberships(user)
    org.owner.UndeleteOrganization(rpc.UndeleteOrganizationRequest(organization_id=org.id))
    assert memberships(user)[org.id] == "developer"


def test_deleting_the_domain_stops_auto_join(api: Api, joinable: tuple[Org, str]) -> None:
    org, domain = joinable
    org.owner.DeleteDomain(rpc.DeleteDomainRequest(organization_id=org.id, name=domain))
    assert org.id not in memberships(employee(api, domain))


# --- invitations restricted to verified domains ----------------------------------------------


def test_restricted_invitations(org: Org, dns_server: LocalDnsServer) -> None:
    domain = verified_domain(org.owner, dns_server, org.id).name
    outside = org.invite(f"someone-{uuid.uuid4().hex[:6]}@elsewhere.example").invitation
    org.set(restrict_invitations_to_domains=True)

    refused = failure(lambda: org.invite(f"x-{uuid.uuid4().hex[:6]}@elsewhere.example"))
    assert (refused.code, refused.reason) == (Code.FAILED_PRECONDITION, "EMAIL_DOMAIN_NOT_ALLOWED")
    subdomain = failure(lambda: org.invite(f"x-{uuid.uuid4().hex[:6]}@sub.{domain}"))
    assert subdomain.reason == "EMAIL_DOMAIN_NOT_ALLOWED"
    resend = rpc.ResendInvitationRequest(invitation_id=outside.id)
    assert failure(lambda: org.owner.ResendInvitation(resend)).reason == (
        "EMAIL_DOMAIN_NOT_ALLOWED"
    )
    assert org.invite(f"x-{uuid.uuid4().hex[:6]}@{domain.upper()}").invitation.email.endswith(
        f"@{domain}"
    )


def test_restricted_invitations_without_verified_domains(api: Api, org: Org) -> None:
    org.set(restrict_invitations_to_domains=True)
    pending_claim = new_domain()
    org.owner.CreateDomain(rpc.CreateDomainRequest(organization_id=org.id, name=pending_claim))
    refused = failure(lambda: org.invite(f"x@{pending_claim}"))
    assert refused.reason == "EMAIL_DOMAIN_NOT_ALLOWED"


# --- the member limit ---------------------------------------------------------------------


def test_the_member_limit_stops_joins(api: Api, org: Org) -> None:
    org.set(max_members=2)
    org.add(api.client())
    full = failure(lambda: org.add(api.client()))
    assert (full.code, full.reason) == (Code.FAILED_PRECONDITION, "MEMBER_LIMIT_REACHED")

    invitee = api.client(email=f"i-{uuid.uuid4().hex[:6]}@example.com", email_verified=True)
    token = org.invite(invitee_email(invitee)).token
    accept = rpc.AcceptInvitationRequest(token=token)
    limited = failure(lambda: invitee.AcceptInvitation(accept))
    assert (limited.code, limited.reason) == (Code.FAILED_PRECONDITION, "MEMBER_LIMIT_REACHED")
    assert org.get().member_count == 2

    # A limit below the current count is allowed and only stops new joins.
    org.set(max_members=1)
    assert org.get().member_count == 2
    org.set(max_members=0)
    assert invitee.AcceptInvitation(accept).member.role == "viewer"


def invitee_email(client: Client) -> str:
    return str(client.GetCurrentUser(rpc.GetCurrentUserRequest()).user.email)


@pytest.mark.postgres_only
def test_fifty_concurrent_joins_into_ten_free_seats(
    pg_api: Api, pg_api_peer: Api, dns_server: LocalDnsServer
) -> None:
    """AddMember, AcceptInvitation and auto-join (GetCurrentUser) at once, spread over
    two replicas: exactly the free seats are taken."""
    owner = pg_api.client()
    org = Org(pg_api, owner, owner.create_org().id)
    domain = verified_domain(owner, dns_server, org.id).name
    org.set(auto_join_role="viewer", max_members=11)  # the owner plus 10
    peer_owner = pg_api_peer.client(owner.subject)
    servers = [pg_api, pg_api_peer]
    calls: list[Callable[[], Any]] = []
    auto_joiners: list[Client] = []
    for index in range(50):
        api = servers[index % 2]
        kind = index % 3
        if kind == 0:  # added by the owner, through either replica
            user_id = api.client().user_id
            adder = owner if api is pg_api else peer_owner
            request = rpc.AddMemberRequest(organization_id=org.id, user_id=user_id, role="viewer")
            calls.append(lambda adder=adder, request=request: adder.AddMember(request))
        elif kind == 1:  # accepts an invitation
            email = f"i-{uuid.uuid4().hex[:8]}@invited.example"
            token = org.invite(email).token
            user = api.client(email=email, email_verified=True)
            memberships(user)  # provisioned before the race
            accept = rpc.AcceptInvitationRequest(token=token)
            calls.append(lambda user=user, accept=accept: user.AcceptInvitation(accept))
        else:  # auto-joins on GetCurrentUser (provisioned now: the domain needs a call)
            user = api.client(email=f"a-{uuid.uuid4().hex[:8]}@{domain}", email_verified=True)
            auto_joiners.append(user)
            calls.append(lambda user=user: user.GetCurrentUser(rpc.GetCurrentUserRequest()))
    # Provisioning auto-joins too: hold seats back until every auto-joiner exists.
    org.set(max_members=1)
    for user in auto_joiners:
        assert org.id not in memberships(user)
    org.set(max_members=11)

    outcomes = outcomes_together(calls, timeout=60)
    members = org.members()
    assert len(members) == 11, outcomes
    assert org.get().member_count == 11
    # Explicit joins either took a seat or were refused for the limit; GetCurrentUser
    # always succeeds, whether or not its auto-join found a seat.
    assert set(outcomes) <= {"OK", "FAILED_PRECONDITION/MEMBER_LIMIT_REACHED"}, outcomes
    explicit_joins = outcomes["OK"] - len(auto_joiners)
    auto_joins = sum(user.user_id in members for user in auto_joiners)
    assert explicit_joins + auto_joins == 10, outcomes
    refused = outcomes["FAILED_PRECONDITION/MEMBER_LIMIT_REACHED"]
    assert refused == 50 - len(auto_joiners) - explicit_joins, outcomes
    assert len(org.events("member.auto_joined")) == auto_joins


# --- the default invitation lifetime ---------------------------------------------------------


def lifetime(invitation: pb.Invitation) -> timedelta:
    return invitation.expire_time.ToDatetime() - invitation.create_time.ToDatetime()


def test_the_default_invitation_ttl(org: Org) -> None:
    assert lifetime(org.invite(f"a-{uuid.uuid4().hex[:6]}@x.example").invitation) == timedelta(
        days=7
    )
    org.set(default_invitation_ttl=duration(timedelta(hours=36)))
    invitation = org.invite(f"b-{uuid.uuid4().hex[:6]}@x.example").invitation
    assert lifetime(invitation) == timedelta(hours=36)
    explicit = org.invite(f"c-{uuid.uuid4().hex[:6]}@x.example", ttl=duration(timedelta(days=1)))
    assert lifetime(explicit.invitation) == timedelta(days=1)
    resent = org.owner.ResendInvitation(rpc.ResendInvitationRequest(invitation_id=invitation.id))
    renewed = resent.invitation
    assert renewed.expire_time.ToDatetime() - renewed.update_time.ToDatetime() == timedelta(
        hours=36
    )
