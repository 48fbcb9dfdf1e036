"""The one place where errors become gRPC statuses with ErrorInfo/BadRequest details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from orgservice.domain import errors

DOMAIN = "orgs.v1"


class Unauthenticated(errors.DomainError):
    default_reason = "UNAUTHENTICATED"


_STATUS_CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}


def status_for(error: errors.DomainError) -> grpc.Status:
    code = _STATUS_CODES[type(error)]
    details: list[Message] = [
        error_details_pb2.ErrorInfo(
            reason=error.reason, domain=DOMAIN, metadata=dict(error.metadata)
        )
    ]
    if isinstance(error, errors.InvalidArgument) and error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    return _status(code, error.message, details)


def internal_error_status(correlation_id: str) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(
        reason="INTERNAL", domain=DOMAIN, metadata={"correlation_id": correlation_id}
    )
    return _status(grpc.StatusCode.INTERNAL, "internal error", [info])


def _status(code: grpc.StatusCode, message: str, details: list[Message]) -> grpc.Status:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    proto = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    status: grpc.Status = rpc_status.to_status(proto)
    return status
