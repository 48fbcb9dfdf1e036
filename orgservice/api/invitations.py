"""The invitation RPCs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from orgservice.api import converters
from orgservice.api.field_masks import update_of
from orgservice.api.rpc_base import RpcBase
from orgservice.domain.errors import invalid
from orgservice.domain.models import Call
from orgservice.service.invitations import InvitationChanges
from orgservice.service.invitations import NewInvitation

MUTABLE_FIELDS = frozenset({"role", "expire_time"})


def _ttl(
    request: rpc.CreateInvitationRequest | rpc.ResendInvitationRequest | rpc.BatchInvitation,
    field: str = "ttl",
) -> Callable[[], timedelta | None]:
    return lambda: converters.to_timedelta(request.ttl, field) if request.HasField("ttl") else None


def _changes(resource: pb.Invitation, paths: set[str]) -> InvitationChanges:
    return InvitationChanges(
        role=resource.role if "role" in paths else None,
        expire_time=(
            converters.to_datetime(resource.expire_time, "invitation.expire_time")
            if "expire_time" in paths
            else None
        ),
    )


def _addressed(
    request: rpc.AcceptInvitationRequest | rpc.DeclineInvitationRequest,
) -> dict[str, str]:
    if request.WhichOneof("invitation") is None or not (request.invitation_id or request.token):
        raise invalid("invitation_id", "invitation_id or token is required")
    return {"invitation_id": request.invitation_id, "token": request.token}


class InvitationRpcs(RpcBase):
    def CreateInvitation(
        self, request: rpc.CreateInvitationRequest, call: Call
    ) -> rpc.CreateInvitationResponse:
        invitation, token = self._services.invitations.create(
            call,
            request.organization_id,
            email=request.email,
            role=request.role,
            ttl=_ttl(request),
            request_id=request.request_id,
        )
        return rpc.CreateInvitationResponse(
            invitation=converters.invitation(invitation), token=token
        )

    def BatchCreateInvitations(
        self, request: rpc.BatchCreateInvitationsRequest, call: Call
    ) -> rpc.BatchCreateInvitationsResponse:
        entries = [
            NewInvitation(entry.email, entry.role, _ttl(entry, f"invitations[{index}].ttl"))
            for index, entry in enumerate(request.invitations)
        ]
        sent = self._services.invitations.batch_create(call, request.organization_id, entries)
        return rpc.BatchCreateInvitationsResponse(
            invitations=[converters.invitation(invitation) for invitation, _ in sent],
            tokens=[token for _, token in sent],
        )

    def ListInvitations(
        self, request: rpc.ListInvitationsRequest, call: Call
    ) -> rpc.ListInvitationsResponse:
        page = self._services.invitations.list(
            call,
            request.organization_id,
            self._page(request, call),
            state=lambda: converters.invitation_state(request.state),
        )
        return self._listed(
            rpc.ListInvitationsResponse, request, call, page, invitations=converters.fill_invitation
        )

    def GetInvitation(
        self, request: rpc.GetInvitationRequest, call: Call
    ) -> rpc.GetInvitationResponse:
        invitation = self._services.invitations.get(call, request.invitation_id)
        return rpc.GetInvitationResponse(invitation=converters.invitation(invitation))

    def UpdateInvitation(
        self, request: rpc.UpdateInvitationRequest, call: Call
    ) -> rpc.UpdateInvitationResponse:
        resource, wanted = update_of(request, "invitation", MUTABLE_FIELDS, _changes)
        invitation = self._services.invitations.update(call, resource.id, wanted)
        return rpc.UpdateInvitationResponse(invitation=converters.invitation(invitation))

    def RevokeInvitation(
        self, request: rpc.RevokeInvitationRequest, call: Call
    ) -> rpc.RevokeInvitationResponse:
        invitation = self._services.invitations.revoke(call, request.invitation_id)
        return rpc.RevokeInvitationResponse(invitation=converters.invitation(invitation))

    def ResendInvitation(
        self, request: rpc.ResendInvitationRequest, call: Call
    ) -> rpc.ResendInvitationResponse:
        invitation, token = self._services.invitations.resend(
            call, request.invitation_id, _ttl(request)
        )
        return rpc.ResendInvitationResponse(
            invitation=converters.invitation(invitation), token=token
        )

    def AcceptInvitation(
        self, request: rpc.AcceptInvitationRequest, call: Call
    ) -> rpc.AcceptInvitationResponse:
        member = self._services.invitations.accept(call, **_addressed(request))
        return rpc.AcceptInvitationResponse(member=converters.member(member))

    def DeclineInvitation(
        self, request: rpc.DeclineInvitationRequest, call: Call
    ) -> rpc.DeclineInvitationResponse:
        invitation = self._services.invitations.decline(call, **_addressed(request))
        return rpc.DeclineInvitationResponse(invitation=converters.invitation(invitation))

    def ListMyInvitations(
        self, request: rpc.ListMyInvitationsRequest, call: Call
    ) -> rpc.ListMyInvitationsResponse:
        page = self._services.invitations.list_mine(call, self._page(request, call))
        return self._listed(
            rpc.ListMyInvitationsResponse,
            request,
            call,
            page,
            invitations=converters.fill_invitation,
        )
