"""The workspace RPCs."""

from __future__ import annotations

from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from orgservice.api import converters
from orgservice.api.field_masks import update_of
from orgservice.api.rpc_base import RpcBase
from orgservice.domain.models import Call
from orgservice.domain.models import WorkspaceFields

MUTABLE_FIELDS = frozenset({"name", "slug", "description"})


def _fields(resource: pb.Workspace, paths: set[str]) -> WorkspaceFields:
    return WorkspaceFields(
        name=resource.name if "name" in paths else None,
        slug=resource.slug if "slug" in paths else None,
        description=resource.description if "description" in paths else None,
    )


class WorkspaceRpcs(RpcBase):
    def CreateWorkspace(
        self, request: rpc.CreateWorkspaceRequest, call: Call
    ) -> rpc.CreateWorkspaceResponse:
        fields = WorkspaceFields(
            name=request.name, slug=request.slug, description=request.description
        )
        workspace = self._services.workspaces.create(
            call, request.organization_id, fields, request_id=request.request_id
        )
        return rpc.CreateWorkspaceResponse(workspace=converters.workspace(workspace))

    def GetWorkspace(
        self, request: rpc.GetWorkspaceRequest, call: Call
    ) -> rpc.GetWorkspaceResponse:
        workspace = self._services.workspaces.get(
            call, request.organization_id, request.workspace_id
        )
        return rpc.GetWorkspaceResponse(workspace=converters.workspace(workspace))

    def ListWorkspaces(
        self, request: rpc.ListWorkspacesRequest, call: Call
    ) -> rpc.ListWorkspacesResponse:
        page = self._services.workspaces.list(
            call, request.organization_id, self._page(request, call), name_filter=request.filter
        )
        return self._listed(
            rpc.ListWorkspacesResponse, request, call, page, workspaces=converters.fill_workspace
        )

    def UpdateWorkspace(
        self, request: rpc.UpdateWorkspaceRequest, call: Call
    ) -> rpc.UpdateWorkspaceResponse:
        resource, fields = update_of(request, "workspace", MUTABLE_FIELDS, _fields)
        workspace = self._services.workspaces.update(
            call, resource.organization_id, resource.id, fields, etag=resource.etag
        )
        return rpc.UpdateWorkspaceResponse(workspace=converters.workspace(workspace))

    def DeleteWorkspace(
        self, request: rpc.DeleteWorkspaceRequest, call: Call
    ) -> rpc.DeleteWorkspaceResponse:
        self._services.workspaces.delete(
            call, request.organization_id, request.workspace_id, etag=request.etag
        )
        return rpc.DeleteWorkspaceResponse()
