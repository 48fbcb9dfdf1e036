"""OrganizationService: each RPC parses its request, calls one use case and converts
the result. The RPCs live in groups by resource; this class puts them together."""

from __future__ import annotations

from orgs.v1 import organization_service_pb2_grpc as rpc_grpc

from orgservice.api.invitation_rpcs import InvitationRpcs
from orgservice.api.member_rpcs import MemberRpcs
from orgservice.api.organization_rpcs import OrganizationRpcs


class OrganizationServicer(
    OrganizationRpcs, MemberRpcs, InvitationRpcs, rpc_grpc.OrganizationServiceServicer
):
    """Every RPC of the contract; mypy reports any the generated base leaves abstract."""
