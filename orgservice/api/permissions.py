"""CheckPermission."""

from __future__ import annotations

from collections.abc import Callable

from orgs.v1 import organization_service_pb2 as rpc

from orgservice.api.rpc_base import RpcBase
from orgservice.api.rpc_base import answers_from_memory
from orgservice.domain.errors import invalid
from orgservice.domain.models import Call

_CONSISTENCIES = frozenset(rpc.Consistency.values())


def _known_consistency(consistency: int) -> Callable[[], None]:
    def validate() -> None:
        if consistency not in _CONSISTENCIES:
            raise invalid("consistency", f"unknown consistency {consistency}")

    return validate


class PermissionRpcs(RpcBase):
    @answers_from_memory
    def CheckPermission(
        self, request: rpc.CheckPermissionRequest, call: Call
    ) -> rpc.CheckPermissionResponse:
        check = self._services.permission_checks.check(
            call,
            request.organization_id,
            request.permission,
            user_id=request.user_id,
            workspace_id=request.workspace_id,
            fully_consistent=request.consistency == rpc.CONSISTENCY_FULLY_CONSISTENT,
            validate=_known_consistency(request.consistency),
        )
        return rpc.CheckPermissionResponse(allowed=check.allowed, role=check.role)
