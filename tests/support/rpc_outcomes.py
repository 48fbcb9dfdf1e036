"""How calls ended, decoded for assertions and for counting: the ErrorInfo reason of an
error, a call's result or its error, its status code and reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

T = TypeVar("T")


def error_reason(error: grpc.RpcError) -> str:
    """The reason of the error's ErrorInfo detail ("" when it has none)."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def label(code: grpc.StatusCode, reason: str) -> str:
    """ "CODE/REASON" (the ErrorInfo reason), or "CODE" without one."""
    return f"{code.name}/{reason}" if reason else str(code.name)


def outcome(call: Callable[[], Any]) -> str:
    """ "OK", or the failure as `label` names it."""
    result = result_of(call)
    return label(result.code, result.reason)


@dataclass(frozen=True)
class Result:
    """A call's status code and ErrorInfo reason."""

    code: grpc.StatusCode
    reason: str


OK = Result(grpc.StatusCode.OK, "")


def result_of(call: Callable[[], Any]) -> Result:
    try:
        call()
    except grpc.RpcError as error:
        return Result(error.code(), error_reason(error))
    return OK


def result_or_error(call: Callable[[], T]) -> T | grpc.RpcError:
    """The call's response, or the gRPC error it raised."""
    try:
        return call()
    except grpc.RpcError as error:
        return error
