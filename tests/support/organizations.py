"""Helpers of the organization tests: organization RPCs as one-liners, and what their
answers are checked against."""

from __future__ import annotations

import re
from datetime import UTC
from datetime import datetime
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Client
from tests.support.clients import all_items

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
ACTIVE = pb.ORGANIZATION_STATE_ACTIVE
DELETED = pb.ORGANIZATION_STATE_DELETED


def when(timestamp: Any) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)


def get_org(client: Client, organization_id: str = "", slug: str = "") -> pb.Organization:
    if slug:
        request = rpc.GetOrganizationRequest(slug=slug)
    else:
        request = rpc.GetOrganizationRequest(organization_id=organization_id)
    return client.GetOrganization(request).organization


def list_orgs(client: Client, **fields: Any) -> rpc.ListOrganizationsResponse:
    return client.ListOrganizations(rpc.ListOrganizationsRequest(**fields))


def list_all(client: Client, page_size: int = 1000, **fields: Any) -> list[pb.Organization]:
    """Every organization of a list, following next_page_token."""
    return all_items(
        lambda token: list_orgs(client, page_size=page_size, page_token=token, **fields),
        "organizations",
    )


def ids(organizations: Any) -> list[str]:
    return [organization.id for organization in organizations]


def personal_org(client: Client) -> pb.Organization:
    """The caller's personal organization (provisioned on the first call)."""
    personal = [o for o in list_all(client) if o.personal]
    assert len(personal) == 1
    return personal[0]


def update(
    client: Client, organization: pb.Organization, paths: list[str] | None = None
) -> pb.Organization:
    request = rpc.UpdateOrganizationRequest(
        organization=organization, update_mask=FieldMask(paths=paths or [])
    )
    return client.UpdateOrganization(request).organization


def delete(client: Client, organization_id: str, etag: str = "") -> pb.Organization:
    request = rpc.DeleteOrganizationRequest(organization_id=organization_id, etag=etag)
    return client.DeleteOrganization(request).organization


def undelete(client: Client, organization_id: str) -> pb.Organization:
    request = rpc.UndeleteOrganizationRequest(organization_id=organization_id)
    return client.UndeleteOrganization(request).organization


def memberships(client: Client) -> dict[str, tuple[str, str]]:
    """organization id -> (slug, role) of the caller's memberships."""
    reply = client.GetCurrentUser(rpc.GetCurrentUserRequest())
    return {m.organization_id: (m.slug, m.role) for m in reply.memberships}


def add_member(owner: Client, organization_id: str, member: Client, role: str) -> None:
    request = rpc.AddMemberRequest(
        organization_id=organization_id, user_id=member.user_id, role=role
    )
    owner.AddMember(request)
