"""Helpers of the invitation tests: fresh invitee emails and users, and an organization
with its owner and an admin who invites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client
from tests.support.clients import all_items
from tests.support.clients import tag


def new_email() -> str:
    return f"invitee-{tag()}@example.com"


def invitee(api: Api, email: str, *, verified: bool = True) -> Client:
    """A fresh user whose token carries `email` (verified or not)."""
    return api.client(email=email, email_verified=verified)


@dataclass
class Org:
    """A fresh organization with its owner and an admin."""

    api: Api
    org: pb.Organization
    owner: Client
    admin: Client

    @property
    def id(self) -> str:
        return str(self.org.id)

    def invite(
        self,
        email: str | None = None,
        role: str = "developer",
        *,
        by: Client | None = None,
        **fields: Any,
    ) -> rpc.CreateInvitationResponse:
        request = rpc.CreateInvitationRequest(
            organization_id=self.id, email=email or new_email(), role=role, **fields
        )
        return (by or self.admin).CreateInvitation(request)

    def get(self, invitation_id: str, by: Client | None = None) -> pb.Invitation:
        request = rpc.GetInvitationRequest(invitation_id=invitation_id)
        return (by or self.admin).GetInvitation(request).invitation

    def list(self, state: int = 0) -> list[pb.Invitation]:
        return all_items(
            lambda token: self.admin.ListInvitations(
                rpc.ListInvitationsRequest(organization_id=self.id, state=state, page_token=token)
            ),
            "invitations",
        )

    def listed_ids(self, state: int = 0) -> list[str]:
        return [i.id for i in self.list(state)]

    def members(self) -> dict[str, str]:
        """user id -> role."""
        response = self.owner.ListMembers(
            rpc.ListMembersRequest(organization_id=self.id, page_size=1000)
        )
        return {m.user.id: m.role for m in response.members}

    def events(self, action: str = "") -> list[pb.AuditEvent]:
        return all_items(
            lambda token: self.owner.ListAuditEvents(
                rpc.ListAuditEventsRequest(organization_id=self.id, action=action, page_token=token)
            ),
            "events",
        )

    def member_count(self) -> int:
        request = rpc.GetOrganizationRequest(organization_id=self.id)
        return int(self.owner.GetOrganization(request).organization.member_count)


def new_org(api: Api) -> Org:
    owner = api.client()
    organization = owner.create_org()
    admin = api.client()
    owner.AddMember(
        rpc.AddMemberRequest(organization_id=organization.id, user_id=admin.user_id, role="admin")
    )
    return Org(api, organization, owner, admin)


def accept(client: Client, **by: str) -> pb.Member:
    return client.AcceptInvitation(rpc.AcceptInvitationRequest(**by)).member
