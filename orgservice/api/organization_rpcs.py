"""GetCurrentUser and the organization RPCs."""

from __future__ import annotations

import grpc
from orgs.v1 import organization_service_pb2 as rpc

from orgservice.api import converters
from orgservice.api.field_masks import paths_to_update
from orgservice.api.rpc_base import RpcBase, authorized_input
from orgservice.domain.errors import invalid
from orgservice.domain.models import OrganizationFields
from orgservice.domain.permissions import ORGANIZATIONS_UPDATE
from orgservice.service.access import Target

ORGANIZATION_MUTABLE_FIELDS = frozenset({"name", "slug", "description", "labels"})


class OrganizationRpcs(RpcBase):
    def GetCurrentUser(
        self, request: rpc.GetCurrentUserRequest, context: grpc.ServicerContext
    ) -> rpc.GetCurrentUserResponse:
        user, memberships = self._services.identities.current_user(self._caller())
        return rpc.GetCurrentUserResponse(
            user=converters.user(user),
            memberships=[
                rpc.GetCurrentUserResponse.Membership(
                    organization_id=m.organization_id, slug=m.slug, role=m.role
                )
                for m in memberships
            ],
        )

    def CreateOrganization(
        self, request: rpc.CreateOrganizationRequest, context: grpc.ServicerContext
    ) -> rpc.CreateOrganizationResponse:
        fields = OrganizationFields(
            name=request.name,
            slug=request.slug,
            description=request.description,
            labels=dict(request.labels),
        )
        organization = self._services.organizations.create(
            self._caller(), fields, request_id=request.request_id
        )
        return rpc.CreateOrganizationResponse(organization=converters.organization(organization))

    def GetOrganization(
        self, request: rpc.GetOrganizationRequest, context: grpc.ServicerContext
    ) -> rpc.GetOrganizationResponse:
        lookup = request.WhichOneof("lookup")
        if lookup is None or not getattr(request, lookup):
            raise invalid("organization_id", "organization_id or slug is required")
        organization = self._services.organizations.get(
            self._caller(), organization_id=request.organization_id, slug=request.slug
        )
        return rpc.GetOrganizationResponse(organization=converters.organization(organization))

    def ListOrganizations(
        self, request: rpc.ListOrganizationsRequest, context: grpc.ServicerContext
    ) -> rpc.ListOrganizationsResponse:
        caller = self._caller()
        result = self._services.organizations.list(
            caller,
            self._page(request, caller),
            name_filter=request.filter,
            show_deleted=request.show_deleted,
            user_id=request.user_id,
        )
        return rpc.ListOrganizationsResponse(
            organizations=[converters.organization(o) for o in result.items],
            next_page_token=self._next_page_token(request, caller, result.next_cursor),
            total_size=result.total_size,
        )

    @authorized_input(ORGANIZATIONS_UPDATE, lambda r: Target(r.organization.id))
    def UpdateOrganization(
        self, request: rpc.UpdateOrganizationRequest, context: grpc.ServicerContext
    ) -> rpc.UpdateOrganizationResponse:
        resource = request.organization
        if not resource.id:
            raise invalid("organization.id", "is required")
        paths = paths_to_update(request.update_mask, resource, ORGANIZATION_MUTABLE_FIELDS)
        if not paths:
            raise invalid("update_mask", "names no field to update")
        fields = OrganizationFields(
            name=resource.name if "name" in paths else None,
            slug=resource.slug if "slug" in paths else None,
            description=resource.description if "description" in paths else None,
            labels=dict(resource.labels) if "labels" in paths else None,
        )
        organization = self._services.organizations.update(
            self._caller(), resource.id, fields, etag=resource.etag
        )
        return rpc.UpdateOrganizationResponse(organization=converters.organization(organization))

    def DeleteOrganization(
        self, request: rpc.DeleteOrganizationRequest, context: grpc.ServicerContext
    ) -> rpc.DeleteOrganizationResponse:
        if not request.organization_id:
            raise invalid("organization_id", "is required")
        organization = self._services.organizations.delete(
            self._caller(), request.organization_id, etag=request.etag
        )
        return rpc.DeleteOrganizationResponse(organization=converters.organization(organization))

    def UndeleteOrganization(
        self, request: rpc.UndeleteOrganizationRequest, context: grpc.ServicerContext
    ) -> rpc.UndeleteOrganizationResponse:
        if not request.organization_id:
            raise invalid("organization_id", "is required")
        organization = self._services.organizations.undelete(
            self._caller(), request.organization_id
        )
        return rpc.UndeleteOrganizationResponse(organization=converters.organization(organization))
