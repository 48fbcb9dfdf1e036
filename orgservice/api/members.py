"""The member RPCs."""

from __future__ import annotations

from orgs.v1 import organization_service_pb2 as rpc

from orgservice.api import converters
from orgservice.api.rpc_base import RpcBase
from orgservice.api.rpc_base import answers_from_memory
from orgservice.domain.models import Call
from orgservice.domain.models import UserRef


class MemberRpcs(RpcBase):
    @answers_from_memory
    def ListMembers(self, request: rpc.ListMembersRequest, call: Call) -> rpc.ListMembersResponse:
        page = self._services.members.list(
            call,
            request.organization_id,
            self._page(request, call),
            role=request.role,
            query=request.query,
        )
        # Pages without a query come from the read cache (SqlUnitOfWork.member_page).
        return self._listed(
            rpc.ListMembersResponse,
            request,
            call,
            page,
            cached=not request.query,
            members=converters.fill_member,
        )

    def AddMember(self, request: rpc.AddMemberRequest, call: Call) -> rpc.AddMemberResponse:
        user = UserRef(user_id=request.user_id, username=request.username, email=request.email)
        member = self._services.members.add(call, request.organization_id, user, request.role)
        return rpc.AddMemberResponse(member=converters.member(member))

    def UpdateMember(
        self, request: rpc.UpdateMemberRequest, call: Call
    ) -> rpc.UpdateMemberResponse:
        member = self._services.members.update(
            call, request.organization_id, request.user_id, request.role
        )
        return rpc.UpdateMemberResponse(member=converters.member(member))

    def RemoveMember(
        self, request: rpc.RemoveMemberRequest, call: Call
    ) -> rpc.RemoveMemberResponse:
        self._services.members.remove(call, request.organization_id, request.user_id)
        return rpc.RemoveMemberResponse()

    def TransferOwnership(
        self, request: rpc.TransferOwnershipRequest, call: Call
    ) -> rpc.TransferOwnershipResponse:
        organization = self._services.members.transfer_ownership(
            call, request.organization_id, request.user_id
        )
        return rpc.TransferOwnershipResponse(organization=converters.organization(organization))
