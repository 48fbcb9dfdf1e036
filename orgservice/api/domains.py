"""The domain RPCs."""

from __future__ import annotations

from orgs.v1 import organization_service_pb2 as rpc

from orgservice.api import converters
from orgservice.api.rpc_base import RpcBase
from orgservice.api.rpc_base import ungated
from orgservice.domain.models import Call


class DomainRpcs(RpcBase):
    def CreateDomain(
        self, request: rpc.CreateDomainRequest, call: Call
    ) -> rpc.CreateDomainResponse:
        domain = self._services.domains.create(call, request.organization_id, request.name)
        return rpc.CreateDomainResponse(domain=converters.domain(domain))

    @ungated
    def VerifyDomain(
        self, request: rpc.VerifyDomainRequest, call: Call
    ) -> rpc.VerifyDomainResponse:
        domain = self._services.domains.verify(call, request.organization_id, request.name)
        return rpc.VerifyDomainResponse(domain=converters.domain(domain))

    def ListDomains(self, request: rpc.ListDomainsRequest, call: Call) -> rpc.ListDomainsResponse:
        domains = self._services.domains.list(call, request.organization_id)
        return rpc.ListDomainsResponse(domains=[converters.domain(d) for d in domains])

    def DeleteDomain(
        self, request: rpc.DeleteDomainRequest, call: Call
    ) -> rpc.DeleteDomainResponse:
        self._services.domains.delete(call, request.organization_id, request.name)
        return rpc.DeleteDomainResponse()
