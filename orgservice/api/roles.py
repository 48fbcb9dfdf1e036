"""The role RPCs."""

from __future__ import annotations

from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from orgservice.api import converters
from orgservice.api.field_masks import update_of
from orgservice.api.rpc_base import RpcBase
from orgservice.domain.models import Call
from orgservice.service.roles import RoleChanges

MUTABLE_FIELDS = frozenset({"description", "permissions"})


def _changes(resource: pb.Role, paths: set[str]) -> RoleChanges:
    return RoleChanges(
        description=resource.description if "description" in paths else None,
        permissions=list(resource.permissions) if "permissions" in paths else None,
    )


class RoleRpcs(RpcBase):
    def ListRoles(self, request: rpc.ListRolesRequest, call: Call) -> rpc.ListRolesResponse:
        page = self._services.roles.list(call, request.organization_id, self._page(request, call))
        return self._listed(rpc.ListRolesResponse, request, call, page, roles=converters.fill_role)

    def CreateRole(self, request: rpc.CreateRoleRequest, call: Call) -> rpc.CreateRoleResponse:
        role = self._services.roles.create(
            call,
            request.organization_id,
            name=request.name,
            description=request.description,
            permissions=list(request.permissions),
            request_id=request.request_id,
        )
        return rpc.CreateRoleResponse(role=converters.role(role))

    def UpdateRole(self, request: rpc.UpdateRoleRequest, call: Call) -> rpc.UpdateRoleResponse:
        resource, wanted = update_of(request, "role", MUTABLE_FIELDS, _changes, key="name")
        role = self._services.roles.update(call, resource.organization_id, resource.name, wanted)
        return rpc.UpdateRoleResponse(role=converters.role(role))

    def DeleteRole(self, request: rpc.DeleteRoleRequest, call: Call) -> rpc.DeleteRoleResponse:
        self._services.roles.delete(call, request.organization_id, request.name)
        return rpc.DeleteRoleResponse()
