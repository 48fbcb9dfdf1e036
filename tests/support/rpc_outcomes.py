"""Outcomes of calls raced against each other, for counting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def outcome(call: Callable[[], Any]) -> str:
    """ "OK", or the failure as "CODE/REASON" (the ErrorInfo reason)."""
    try:
        call()
    except grpc.RpcError as error:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return f"{error.code().name}/{info.reason}"  # type: ignore[attr-defined]
        return str(error.code().name)  # type: ignore[attr-defined]
    return "OK"
