"""The organization RPCs."""

from __future__ import annotations

from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from orgservice.api import converters
from orgservice.api.field_masks import update_of
from orgservice.api.rpc_base import RpcBase
from orgservice.api.rpc_base import answers_from_memory
from orgservice.domain.errors import invalid
from orgservice.domain.models import Call
from orgservice.domain.models import OrganizationFields
from orgservice.domain.models import SettingsChanges

_SETTINGS = "settings."
MUTABLE_FIELDS = frozenset(
    {
        "name",
        "slug",
        "description",
        "labels",
        *(
            _SETTINGS + name
            for name in (
                "auto_join_role",
                "restrict_invitations_to_domains",
                "max_members",
                "default_invitation_ttl",
            )
        ),
        "public_metadata",
        "private_metadata",
    }
)


def _fields(resource: pb.Organization, paths: set[str]) -> OrganizationFields:
    settings = frozenset(p.removeprefix(_SETTINGS) for p in paths if p.startswith(_SETTINGS))
    return OrganizationFields(
        name=resource.name if "name" in paths else None,
        slug=resource.slug if "slug" in paths else None,
        description=resource.description if "description" in paths else None,
        labels=dict(resource.labels) if "labels" in paths else None,
        settings=(
            SettingsChanges(converters.settings_fields(resource.settings, settings), settings)
            if settings
            else None
        ),
        public_metadata=(
            converters.metadata(resource.public_metadata, "public_metadata")
            if "public_metadata" in paths
            else None
        ),
        private_metadata=(
            converters.metadata(resource.private_metadata, "private_metadata")
            if "private_metadata" in paths
            else None
        ),
    )


class OrganizationRpcs(RpcBase):
    def CreateOrganization(
        self, request: rpc.CreateOrganizationRequest, call: Call
    ) -> rpc.CreateOrganizationResponse:
        fields = OrganizationFields(
            name=request.name,
            slug=request.slug,
            description=request.description,
            labels=dict(request.labels),
        )
        organization = self._services.organizations.create(
            call, fields, request_id=request.request_id
        )
        return rpc.CreateOrganizationResponse(organization=converters.organization(organization))

    @answers_from_memory
    def GetOrganization(
        self, request: rpc.GetOrganizationRequest, call: Call
    ) -> rpc.GetOrganizationResponse:
        lookup = request.WhichOneof("lookup")
        if lookup is None or not getattr(request, lookup):
            raise invalid("organization_id", "organization_id or slug is required")
        organization = self._services.organizations.get(
            call, organization_id=request.organization_id, slug=request.slug
        )
        encoded = self._encodings.of(
            organization,
            "organization",
            lambda: converters.organization(organization).SerializeToString(),
        )
        response = rpc.GetOrganizationResponse()
        response.organization.MergeFromString(encoded)
        return response

    def ListOrganizations(
        self, request: rpc.ListOrganizationsRequest, call: Call
    ) -> rpc.ListOrganizationsResponse:
        page = self._services.organizations.list(
            call,
            self._page(request, call),
            name_filter=request.filter,
            show_deleted=request.show_deleted,
            user_id=request.user_id,
        )
        return self._listed(
            rpc.ListOrganizationsResponse,
            request,
            call,
            page,
            organizations=converters.fill_organization,
        )

    def UpdateOrganization(
        self, request: rpc.UpdateOrganizationRequest, call: Call
    ) -> rpc.UpdateOrganizationResponse:
        resource, fields = update_of(request, "organization", MUTABLE_FIELDS, _fields)
        organization = self._services.organizations.update(
            call, resource.id, fields, etag=resource.etag
        )
        return rpc.UpdateOrganizationResponse(organization=converters.organization(organization))

    def DeleteOrganization(
        self, request: rpc.DeleteOrganizationRequest, call: Call
    ) -> rpc.DeleteOrganizationResponse:
        if not request.organization_id:
            raise invalid("organization_id", "is required")
        organization = self._services.organizations.delete(
            call, request.organization_id, etag=request.etag
        )
        return rpc.DeleteOrganizationResponse(organization=converters.organization(organization))

    def UndeleteOrganization(
        self, request: rpc.UndeleteOrganizationRequest, call: Call
    ) -> rpc.UndeleteOrganizationResponse:
        if not request.organization_id:
            raise invalid("organization_id", "is required")
        organization = self._services.organizations.undelete(call, request.organization_id)
        return rpc.UndeleteOrganizationResponse(organization=converters.organization(organization))
