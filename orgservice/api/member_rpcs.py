"""Member, role, permission-check and audit RPCs."""

from __future__ import annotations

import grpc
from orgs.v1 import organization_service_pb2 as rpc

from orgservice.api import converters
from orgservice.api.field_masks import paths_to_update
from orgservice.api.rpc_base import RpcBase, authorized_input
from orgservice.domain.errors import invalid
from orgservice.domain.models import UserRef
from orgservice.domain.permissions import (
    AUDIT_LIST,
    MEMBERS_ADD,
    MEMBERS_LIST,
    MEMBERS_UPDATE,
    ROLES_CREATE,
    ROLES_DELETE,
    ROLES_LIST,
    ROLES_UPDATE,
)
from orgservice.service.access import Target

ROLE_MUTABLE_FIELDS = frozenset({"description", "permissions"})


class MemberRpcs(RpcBase):
    @authorized_input(MEMBERS_LIST)
    def ListMembers(
        self, request: rpc.ListMembersRequest, context: grpc.ServicerContext
    ) -> rpc.ListMembersResponse:
        caller = self._caller()
        result = self._services.members.list(
            caller, request.organization_id, self._page(request, caller), role=request.role
        )
        return rpc.ListMembersResponse(
            members=[converters.member(m) for m in result.items],
            next_page_token=self._next_page_token(request, caller, result.next_cursor),
            total_size=result.total_size,
        )

    @authorized_input(MEMBERS_ADD)
    def AddMember(
        self, request: rpc.AddMemberRequest, context: grpc.ServicerContext
    ) -> rpc.AddMemberResponse:
        user = UserRef(user_id=request.user_id, username=request.username, email=request.email)
        member = self._services.members.add(
            self._caller(), request.organization_id, user, request.role
        )
        return rpc.AddMemberResponse(member=converters.member(member))

    @authorized_input(MEMBERS_UPDATE)
    def UpdateMember(
        self, request: rpc.UpdateMemberRequest, context: grpc.ServicerContext
    ) -> rpc.UpdateMemberResponse:
        member = self._services.members.update(
            self._caller(), request.organization_id, request.user_id, request.role
        )
        return rpc.UpdateMemberResponse(member=converters.member(member))

    def RemoveMember(
        self, request: rpc.RemoveMemberRequest, context: grpc.ServicerContext
    ) -> rpc.RemoveMemberResponse:
        self._services.members.remove(self._caller(), request.organization_id, request.user_id)
        return rpc.RemoveMemberResponse()

    @authorized_input(ROLES_LIST)
    def ListRoles(
        self, request: rpc.ListRolesRequest, context: grpc.ServicerContext
    ) -> rpc.ListRolesResponse:
        caller = self._caller()
        result = self._services.roles.list(
            caller, request.organization_id, self._page(request, caller)
        )
        return rpc.ListRolesResponse(
            roles=[converters.role(r) for r in result.items],
            next_page_token=self._next_page_token(request, caller, result.next_cursor),
            total_size=result.total_size,
        )

    @authorized_input(ROLES_CREATE)
    def CreateRole(
        self, request: rpc.CreateRoleRequest, context: grpc.ServicerContext
    ) -> rpc.CreateRoleResponse:
        role = self._services.roles.create(
            self._caller(),
            request.organization_id,
            name=request.name,
            description=request.description,
            permissions=list(request.permissions),
            request_id=request.request_id,
        )
        return rpc.CreateRoleResponse(role=converters.role(role))

    @authorized_input(ROLES_UPDATE, lambda r: Target(r.role.organization_id))
    def UpdateRole(
        self, request: rpc.UpdateRoleRequest, context: grpc.ServicerContext
    ) -> rpc.UpdateRoleResponse:
        resource = request.role
        if not resource.name:
            raise invalid("role.name", "is required")
        paths = paths_to_update(request.update_mask, resource, ROLE_MUTABLE_FIELDS)
        if not paths:
            raise invalid("update_mask", "names no field to update")
        role = self._services.roles.update(
            self._caller(),
            resource.organization_id,
            resource.name,
            description=resource.description if "description" in paths else None,
            permissions=list(resource.permissions) if "permissions" in paths else None,
        )
        return rpc.UpdateRoleResponse(role=converters.role(role))

    @authorized_input(ROLES_DELETE)
    def DeleteRole(
        self, request: rpc.DeleteRoleRequest, context: grpc.ServicerContext
    ) -> rpc.DeleteRoleResponse:
        self._services.roles.delete(self._caller(), request.organization_id, request.name)
        return rpc.DeleteRoleResponse()

    def CheckPermission(
        self, request: rpc.CheckPermissionRequest, context: grpc.ServicerContext
    ) -> rpc.CheckPermissionResponse:
        decision = self._services.permission_checks.check(
            self._caller(),
            request.organization_id,
            request.permission,
            user_id=request.user_id,
            workspace_id=request.workspace_id,
        )
        return rpc.CheckPermissionResponse(allowed=decision.allowed, role=decision.role)

    @authorized_input(AUDIT_LIST)
    def ListAuditEvents(
        self, request: rpc.ListAuditEventsRequest, context: grpc.ServicerContext
    ) -> rpc.ListAuditEventsResponse:
        caller = self._caller()
        result = self._services.audit.list(
            caller, request.organization_id, self._page(request, caller), action=request.action
        )
        return rpc.ListAuditEventsResponse(
            events=[converters.audit_event(e) for e in result.items],
            next_page_token=self._next_page_token(request, caller, result.next_cursor),
            total_size=result.total_size,
        )
