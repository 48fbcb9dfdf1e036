"""The one place where errors become gRPC statuses with ErrorInfo/BadRequest details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2
from google.rpc import error_details_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status

from orgservice.domain import errors

DOMAIN = "orgs.v1"
# Clients drop trailers beyond their metadata limit (8 KiB by default): keep the details
# (grpc-status-details-bin, which holds the message too) and the message (grpc-message,
# percent-encoded: up to 12 bytes a character) well under it however many fields were
# wrong and whatever characters they hold.
MAX_DETAIL_BYTES = 4096
MAX_MESSAGE_BYTES = 512
_MAX_FIELD_PATH = 128
_ELLIPSIS = "…"

# One code per class of error; a reason's class derives from exactly one of these.
STATUS_CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
}


def code_for(error: errors.DomainError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        code = STATUS_CODES.get(cls)
        if code is not None:
            return code
    raise TypeError(f"{type(error).__name__} derives from no error class with a status code")


def status_for(error: errors.DomainError) -> grpc.Status:
    code = code_for(error)
    message = _fitted(error.message)
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=DOMAIN, metadata=dict(error.metadata)
    )
    details: list[Message] = [info]
    if isinstance(error, errors.InvalidArgument) and error.violations:
        # The message travels twice: in grpc-message, and in the status with the details.
        spent = _status_proto(code, message, details).ByteSize() + len(message.encode())
        bad_request = _bad_request(error.violations, budget=MAX_DETAIL_BYTES - 1 - spent)
        details.append(bad_request)
    return _status(code, message, details)


def internal_error_status(correlation_id: str) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(
        reason="INTERNAL", domain=DOMAIN, metadata={"correlation_id": correlation_id}
    )
    return _status(grpc.StatusCode.INTERNAL, "internal error", [info])


def _bad_request(
    violations: list[errors.FieldViolation], *, budget: int
) -> error_details_pb2.BadRequest:
    """One violation per bad field, as many as fit in `budget` bytes once packed."""
    bad = error_details_pb2.BadRequest()
    budget -= _packed(bad).ByteSize() + 8  # the Any wrapping it, and its own tag
    for violation in violations:
        entry = error_details_pb2.BadRequest.FieldViolation(
            field=violation.field[:_MAX_FIELD_PATH], description=violation.description
        )
        if bad.ByteSize() + entry.ByteSize() + 8 > budget:
            break
        bad.field_violations.append(entry)
    return bad


def _fitted(message: str) -> str:
    """The message, cut so that its percent-encoded form fits MAX_MESSAGE_BYTES."""
    if _encoded_size(message) <= MAX_MESSAGE_BYTES:
        return message
    room = MAX_MESSAGE_BYTES - _encoded_size(_ELLIPSIS)
    kept = 0
    for ch in message:
        room -= _encoded_size(ch)
        if room < 0:
            break
        kept += 1
    return message[:kept] + _ELLIPSIS


def _encoded_size(text: str) -> int:
    """Bytes in grpc-message: printable ASCII but '%' as is, the rest percent-encoded."""
    return sum(1 if " " <= ch <= "~" and ch != "%" else 3 * len(ch.encode()) for ch in text)


def _packed(detail: Message) -> any_pb2.Any:
    holder = any_pb2.Any()
    holder.Pack(detail)
    return holder


def _status_proto(code: grpc.StatusCode, message: str, details: list[Message]) -> status_pb2.Status:
    return status_pb2.Status(
        code=getattr(code_pb2, code.name),
        message=message,
        details=[_packed(detail) for detail in details],
    )


def _status(code: grpc.StatusCode, message: str, details: list[Message]) -> grpc.Status:
    status: grpc.Status = rpc_status.to_status(_status_proto(code, message, details))
    return status
