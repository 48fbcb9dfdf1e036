"""Invitation and workspace RPCs."""

from __future__ import annotations

from datetime import UTC, timedelta

import grpc
from google.protobuf.duration_pb2 import Duration
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from orgservice.api import converters
from orgservice.api.field_masks import paths_to_update
from orgservice.api.rpc_base import RpcBase, authorized_input
from orgservice.domain.errors import invalid
from orgservice.domain.models import WorkspaceFields
from orgservice.domain.permissions import (
    INVITATIONS_CREATE,
    INVITATIONS_LIST,
    INVITATIONS_UPDATE,
    WORKSPACES_CREATE,
    WORKSPACES_DELETE,
    WORKSPACES_GET,
    WORKSPACES_LIST,
    WORKSPACES_UPDATE,
)
from orgservice.service.access import Target

INVITATION_MUTABLE_FIELDS = frozenset({"role", "expire_time"})
WORKSPACE_MUTABLE_FIELDS = frozenset({"name", "slug", "description"})


def _ttl(message: Duration, present: bool) -> timedelta | None:
    return message.ToTimedelta() if present else None


def _one_of(request: rpc.AcceptInvitationRequest | rpc.DeclineInvitationRequest) -> dict[str, str]:
    if request.WhichOneof("invitation") is None or not (request.invitation_id or request.token):
        raise invalid("invitation_id", "invitation_id or token is required")
    return {"invitation_id": request.invitation_id, "token": request.token}


class InvitationRpcs(RpcBase):
    @authorized_input(INVITATIONS_CREATE)
    def CreateInvitation(
        self, request: rpc.CreateInvitationRequest, context: grpc.ServicerContext
    ) -> rpc.CreateInvitationResponse:
        invitation, token = self._services.invitations.create(
            self._caller(),
            request.organization_id,
            email=request.email,
            role=request.role,
            ttl=_ttl(request.ttl, request.HasField("ttl")),
            request_id=request.request_id,
        )
        return rpc.CreateInvitationResponse(
            invitation=converters.invitation(invitation), token=token
        )

    @authorized_input(INVITATIONS_LIST)
    def ListInvitations(
        self, request: rpc.ListInvitationsRequest, context: grpc.ServicerContext
    ) -> rpc.ListInvitationsResponse:
        caller = self._caller()
        state = converters.INVITATION_STATES_FROM_PROTO.get(request.state)
        result = self._services.invitations.list(
            caller, request.organization_id, self._page(request, caller), state=state
        )
        return rpc.ListInvitationsResponse(
            invitations=[converters.invitation(i) for i in result.items],
            next_page_token=self._next_page_token(request, caller, result.next_cursor),
            total_size=result.total_size,
        )

    def GetInvitation(
        self, request: rpc.GetInvitationRequest, context: grpc.ServicerContext
    ) -> rpc.GetInvitationResponse:
        invitation = self._services.invitations.get(self._caller(), request.invitation_id)
        return rpc.GetInvitationResponse(invitation=converters.invitation(invitation))

    @authorized_input(INVITATIONS_UPDATE, lambda r: Target(invitation_id=r.invitation.id))
    def UpdateInvitation(
        self, request: rpc.UpdateInvitationRequest, context: grpc.ServicerContext
    ) -> rpc.UpdateInvitationResponse:
        resource = request.invitation
        if not resource.id:
            raise invalid("invitation.id", "is required")
        paths = paths_to_update(request.update_mask, resource, INVITATION_MUTABLE_FIELDS)
        if not paths:
            raise invalid("update_mask", "names no field to update")
        invitation = self._services.invitations.update(
            self._caller(),
            resource.id,
            role=resource.role if "role" in paths else None,
            expire_time=(
                resource.expire_time.ToDatetime(tzinfo=UTC) if "expire_time" in paths else None
            ),
        )
        return rpc.UpdateInvitationResponse(invitation=converters.invitation(invitation))

    def RevokeInvitation(
        self, request: rpc.RevokeInvitationRequest, context: grpc.ServicerContext
    ) -> rpc.RevokeInvitationResponse:
        invitation = self._services.invitations.revoke(self._caller(), request.invitation_id)
        return rpc.RevokeInvitationResponse(invitation=converters.invitation(invitation))

    @authorized_input(INVITATIONS_CREATE, lambda r: Target(invitation_id=r.invitation_id))
    def ResendInvitation(
        self, request: rpc.ResendInvitationRequest, context: grpc.ServicerContext
    ) -> rpc.ResendInvitationResponse:
        invitation, token = self._services.invitations.resend(
            self._caller(), request.invitation_id, _ttl(request.ttl, request.HasField("ttl"))
        )
        return rpc.ResendInvitationResponse(
            invitation=converters.invitation(invitation), token=token
        )

    def AcceptInvitation(
        self, request: rpc.AcceptInvitationRequest, context: grpc.ServicerContext
    ) -> rpc.AcceptInvitationResponse:
        member = self._services.invitations.accept(self._caller(), **_one_of(request))
        return rpc.AcceptInvitationResponse(member=converters.member(member))

    def DeclineInvitation(
        self, request: rpc.DeclineInvitationRequest, context: grpc.ServicerContext
    ) -> rpc.DeclineInvitationResponse:
        invitation = self._services.invitations.decline(self._caller(), **_one_of(request))
        return rpc.DeclineInvitationResponse(invitation=converters.invitation(invitation))

    def ListMyInvitations(
        self, request: rpc.ListMyInvitationsRequest, context: grpc.ServicerContext
    ) -> rpc.ListMyInvitationsResponse:
        caller = self._caller()
        result = self._services.invitations.list_mine(caller, self._page(request, caller))
        return rpc.ListMyInvitationsResponse(
            invitations=[converters.invitation(i) for i in result.items],
            next_page_token=self._next_page_token(request, caller, result.next_cursor),
            total_size=result.total_size,
        )

    @authorized_input(WORKSPACES_CREATE)
    def CreateWorkspace(
        self, request: rpc.CreateWorkspaceRequest, context: grpc.ServicerContext
    ) -> rpc.CreateWorkspaceResponse:
        fields = WorkspaceFields(
            name=request.name, slug=request.slug, description=request.description
        )
        workspace = self._services.workspaces.create(
            self._caller(), request.organization_id, fields, request_id=request.request_id
        )
        return rpc.CreateWorkspaceResponse(workspace=converters.workspace(workspace))

    @authorized_input(WORKSPACES_GET)
    def GetWorkspace(
        self, request: rpc.GetWorkspaceRequest, context: grpc.ServicerContext
    ) -> rpc.GetWorkspaceResponse:
        workspace = self._services.workspaces.get(
            self._caller(), request.organization_id, request.workspace_id
        )
        return rpc.GetWorkspaceResponse(workspace=converters.workspace(workspace))

    @authorized_input(WORKSPACES_LIST)
    def ListWorkspaces(
        self, request: rpc.ListWorkspacesRequest, context: grpc.ServicerContext
    ) -> rpc.ListWorkspacesResponse:
        caller = self._caller()
        result = self._services.workspaces.list(
            caller, request.organization_id, self._page(request, caller), name_filter=request.filter
        )
        return rpc.ListWorkspacesResponse(
            workspaces=[converters.workspace(w) for w in result.items],
            next_page_token=self._next_page_token(request, caller, result.next_cursor),
            total_size=result.total_size,
        )

    @authorized_input(WORKSPACES_UPDATE, lambda r: Target(r.workspace.organization_id))
    def UpdateWorkspace(
        self, request: rpc.UpdateWorkspaceRequest, context: grpc.ServicerContext
    ) -> rpc.UpdateWorkspaceResponse:
        resource: pb.Workspace = request.workspace
        if not resource.id:
            raise invalid("workspace.id", "is required")
        paths = paths_to_update(request.update_mask, resource, WORKSPACE_MUTABLE_FIELDS)
        if not paths:
            raise invalid("update_mask", "names no field to update")
        fields = WorkspaceFields(
            name=resource.name if "name" in paths else None,
            slug=resource.slug if "slug" in paths else None,
            description=resource.description if "description" in paths else None,
        )
        workspace = self._services.workspaces.update(
            self._caller(), resource.organization_id, resource.id, fields, etag=resource.etag
        )
        return rpc.UpdateWorkspaceResponse(workspace=converters.workspace(workspace))

    @authorized_input(WORKSPACES_DELETE)
    def DeleteWorkspace(
        self, request: rpc.DeleteWorkspaceRequest, context: grpc.ServicerContext
    ) -> rpc.DeleteWorkspaceResponse:
        self._services.workspaces.delete(
            self._caller(), request.organization_id, request.workspace_id, etag=request.etag
        )
        return rpc.DeleteWorkspaceResponse()
