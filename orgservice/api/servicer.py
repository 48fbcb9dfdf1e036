"""OrganizationService RPCs: parse the request, call one use case, convert the result."""

from __future__ import annotations

import grpc
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc

from orgservice.api import converters
from orgservice.api.field_masks import paths_to_update
from orgservice.api.interceptors import current_identity, note_user
from orgservice.api.page_tokens import PageTokens, page_size
from orgservice.domain.errors import invalid
from orgservice.domain.models import Caller, OrganizationFields, PageRequest
from orgservice.service.registry import Services

ORGANIZATION_MUTABLE_FIELDS = frozenset({"name", "slug", "description", "labels"})


class OrganizationServicer(rpc_grpc.OrganizationServiceServicer):
    def __init__(self, services: Services, page_tokens: PageTokens) -> None:
        self._identities = services.identities
        self._organizations = services.organizations
        self._page_tokens = page_tokens

    def _caller(self) -> Caller:
        caller = self._identities.caller_for(current_identity())
        note_user(caller.user_id)
        return caller

    def GetCurrentUser(
        self, request: rpc.GetCurrentUserRequest, context: grpc.ServicerContext
    ) -> rpc.GetCurrentUserResponse:
        user, memberships = self._identities.current_user(self._caller())
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
        organization = self._organizations.create(
            self._caller(), fields, request_id=request.request_id
        )
        return rpc.CreateOrganizationResponse(organization=converters.organization(organization))

    def GetOrganization(
        self, request: rpc.GetOrganizationRequest, context: grpc.ServicerContext
    ) -> rpc.GetOrganizationResponse:
        lookup = request.WhichOneof("lookup")
        if lookup is None or not getattr(request, lookup):
            raise invalid("organization_id", "organization_id or slug is required")
        organization = self._organizations.get(
            self._caller(), organization_id=request.organization_id, slug=request.slug
        )
        return rpc.GetOrganizationResponse(organization=converters.organization(organization))

    def ListOrganizations(
        self, request: rpc.ListOrganizationsRequest, context: grpc.ServicerContext
    ) -> rpc.ListOrganizationsResponse:
        caller = self._caller()
        binding = (
            "ListOrganizations",
            caller.user_id,
            request.filter,
            request.show_deleted,
            request.user_id,
        )
        page = PageRequest(
            limit=page_size(request.page_size),
            after=self._page_tokens.decode(request.page_token, binding),
        )
        result = self._organizations.list(
            caller,
            page,
            name_filter=request.filter,
            show_deleted=request.show_deleted,
            user_id=request.user_id,
        )
        return rpc.ListOrganizationsResponse(
            organizations=[converters.organization(o) for o in result.items],
            next_page_token=self._page_tokens.encode(result.next_cursor, binding),
            total_size=result.total_size,
        )

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
        organization = self._organizations.update(
            self._caller(), resource.id, fields, etag=resource.etag
        )
        return rpc.UpdateOrganizationResponse(organization=converters.organization(organization))

    def DeleteOrganization(
        self, request: rpc.DeleteOrganizationRequest, context: grpc.ServicerContext
    ) -> rpc.DeleteOrganizationResponse:
        organization = self._organizations.delete(
            self._caller(), request.organization_id, etag=request.etag
        )
        return rpc.DeleteOrganizationResponse(organization=converters.organization(organization))

    def UndeleteOrganization(
        self, request: rpc.UndeleteOrganizationRequest, context: grpc.ServicerContext
    ) -> rpc.UndeleteOrganizationResponse:
        organization = self._organizations.undelete(self._caller(), request.organization_id)
        return rpc.UndeleteOrganizationResponse(organization=converters.organization(organization))
