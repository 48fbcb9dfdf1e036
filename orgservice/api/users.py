"""GetCurrentUser."""

from __future__ import annotations

from orgs.v1 import organization_service_pb2 as rpc

from orgservice.api import converters
from orgservice.api.rpc_base import RpcBase
from orgservice.domain.models import Call


class UserRpcs(RpcBase):
    def GetCurrentUser(
        self, request: rpc.GetCurrentUserRequest, call: Call
    ) -> rpc.GetCurrentUserResponse:
        user, memberships = self._services.identities.current_user(call)
        return rpc.GetCurrentUserResponse(
            user=converters.user(user),
            memberships=[
                rpc.GetCurrentUserResponse.Membership(
                    organization_id=m.organization_id, slug=m.slug, role=m.role
                )
                for m in memberships
            ],
        )
