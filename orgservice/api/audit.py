"""ListAuditEvents."""

from __future__ import annotations

from orgs.v1 import organization_service_pb2 as rpc

from orgservice.api import converters
from orgservice.api.rpc_base import RpcBase
from orgservice.domain.models import Call


class AuditRpcs(RpcBase):
    def ListAuditEvents(
        self, request: rpc.ListAuditEventsRequest, call: Call
    ) -> rpc.ListAuditEventsResponse:
        page = self._services.audit.list(
            call, request.organization_id, self._page(request, call), action=request.action
        )
        return rpc.ListAuditEventsResponse(
            events=[converters.audit_event(e) for e in page.items],
            **self._paging(request, call, page),
        )
