"""Server interceptors: access log + error mapping (outer), authentication (inner).

Both wrap the handler's behavior instead of doing work in `intercept_service`, which
grpcio runs on its single polling thread: token checks and logging then run on the
worker thread of the call, where context variables reach the servicer.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from orgservice.api.auth import TokenVerifier
from orgservice.api.errors import internal_error_status, status_for
from orgservice.domain.errors import DomainError
from orgservice.domain.models import Identity

log = logging.getLogger("orgservice.access")
error_log = logging.getLogger("orgservice.errors")

Behavior = Callable[[Any, grpc.ServicerContext], Any]
Continuation = Callable[[grpc.HandlerCallDetails], "grpc.RpcMethodHandler[Any, Any] | None"]

# Methods callable without a token: health checks and server reflection.
PUBLIC_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass
class CallRecord:
    """Facts about the current call that the access log line reports."""

    method: str
    correlation_id: str
    user_id: str = ""


_call: contextvars.ContextVar[CallRecord] = contextvars.ContextVar("orgservice_call")
_identity: contextvars.ContextVar[Identity] = contextvars.ContextVar("orgservice_identity")


def current_identity() -> Identity:
    """The verified identity of the call being served (set by AuthInterceptor)."""
    return _identity.get()


def note_user(user_id: str) -> None:
    """Records the caller's user id for the access log."""
    record = _call.get(None)
    if record is not None:
        record.user_id = user_id


def _wrap_unary(
    handler: grpc.RpcMethodHandler[Any, Any] | None, wrap: Callable[[Behavior], Behavior]
) -> grpc.RpcMethodHandler[Any, Any] | None:
    if handler is None or handler.unary_unary is None:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        wrap(handler.unary_unary),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _metadata(context: grpc.ServicerContext, key: str) -> str | None:
    for item_key, value in context.invocation_metadata():
        if item_key == key:
            return str(value)
    return None


class AccessLogInterceptor(grpc.ServerInterceptor):
    """Logs one line per call and turns exceptions into statuses: DomainErrors by the
    error table, anything else into INTERNAL with the correlation id."""

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method

        def wrap(behavior: Behavior) -> Behavior:
            def logged(request: Any, context: grpc.ServicerContext) -> Any:
                requested_id = _metadata(context, "x-request-id") or ""
                correlation_id = (
                    requested_id if _CORRELATION_ID.match(requested_id) else uuid.uuid4().hex
                )
                record = CallRecord(method, correlation_id)
                token = _call.set(record)
                started = time.perf_counter()
                code = grpc.StatusCode.OK
                try:
                    return behavior(request, context)
                except DomainError as error:
                    status = status_for(error)
                    code = status.code
                    context.abort_with_status(status)
                except Exception:
                    error_log.exception(
                        "unhandled error in %s (correlation_id=%s)", method, correlation_id
                    )
                    code = grpc.StatusCode.INTERNAL
                    context.abort_with_status(internal_error_status(correlation_id))
                finally:
                    log.info(
                        "method=%s status=%s duration_ms=%.1f user_id=%s correlation_id=%s",
                        method,
                        code.name,
                        (time.perf_counter() - started) * 1000,
                        record.user_id or "-",
                        correlation_id,
                    )
                    _call.reset(token)

            return logged

        return _wrap_unary(continuation(handler_call_details), wrap)


class AuthInterceptor(grpc.ServerInterceptor):
    """Requires a valid bearer token on every method but health and reflection."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler_call_details.method.startswith(PUBLIC_METHOD_PREFIXES):
            return handler
        if handler is not None and handler.unary_unary is None:
            raise TypeError(f"{handler_call_details.method}: only unary RPCs can be authenticated")

        def wrap(behavior: Behavior) -> Behavior:
            def authenticated(request: Any, context: grpc.ServicerContext) -> Any:
                identity = self._verifier.verify(_metadata(context, "authorization"))
                token = _identity.set(identity)
                try:
                    return behavior(request, context)
                finally:
                    _identity.reset(token)

            return authenticated

        return _wrap_unary(handler, wrap)
