"""Server interceptors, outermost first: call outcome (error mapping, access log,
metrics), admission (overload and shutdown), authentication.

Each wraps the behaviour of unary and server-streaming handlers alike. Health checks and
server reflection pass every interceptor without a token, are never refused, and are
logged at DEBUG only.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import TypeAlias

import grpc
from grpc import aio

from orgservice.api.auth import TokenVerifier
from orgservice.api.errors import internal_error_status
from orgservice.api.errors import status_for
from orgservice.domain.errors import DomainError
from orgservice.domain.errors import ShuttingDown
from orgservice.domain.errors import TooManyRequests
from orgservice.domain.models import Identity
from orgservice.domain.randomness import random_bytes
from orgservice.telemetry.logging import log_fields

log = logging.getLogger("orgservice.access")
error_log = logging.getLogger("orgservice.errors")

# Methods callable without a token, never refused: health checks and server reflection.
PUBLIC_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# (request streaming, response streaming) -> the grpc_type label (go-grpc-prometheus names).
_GRPC_TYPES = {
    (False, False): "unary",
    (False, True): "server_stream",
    (True, False): "client_stream",
    (True, True): "bidi_stream",
}

Unary: TypeAlias = "Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]"
Streaming: TypeAlias = "Callable[[Any, aio.ServicerContext[Any, Any]], AsyncIterator[Any]]"
Continuation: TypeAlias = (
    "Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]]"
)


@dataclass
class CallRecord:
    """Facts about the current call that the access log line reports."""

    method: str
    correlation_id: str
    streaming: bool
    user_id: str = ""
    trace_id: str = ""


_call: contextvars.ContextVar[CallRecord] = contextvars.ContextVar("orgservice_call")
_identity: contextvars.ContextVar[Identity] = contextvars.ContextVar("orgservice_identity")


def _restore(variable: contextvars.ContextVar[Any], token: contextvars.Token[Any]) -> None:
    """Undoes `variable.set(...)`. A stream its client cancelled is closed later by
    asyncio's async-generator finalizer, in another task's context: there the token is
    foreign and there is nothing to undo (the call's own context ended with its task)."""
    with contextlib.suppress(ValueError):
        variable.reset(token)


def current_identity() -> Identity:
    """The verified identity of the call being served (set by AuthInterceptor)."""
    return _identity.get()


def note_user(user_id: str) -> None:
    """Records the caller's user id for the access log."""
    record = _call.get(None)
    if record is not None:
        record.user_id = user_id


def is_public(method: str) -> bool:
    return method.startswith(PUBLIC_METHOD_PREFIXES)


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any] | None,
    method: str,
    before: Callable[[str, aio.ServicerContext[Any, Any], bool], Awaitable[Callable[[], None]]],
) -> grpc.RpcMethodHandler[Any, Any] | None:
    """The handler with `before(method, context, streaming)` awaited ahead of its
    behaviour; what `before` returns runs when the call ends, however it ends."""
    if handler is None:
        return None
    if handler.unary_unary is not None:
        unary: Unary = handler.unary_unary  # type: ignore[assignment]

        async def unary_behavior(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            after = await before(method, context, False)
            try:
                return await unary(request, context)
            finally:
                after()

        return grpc.unary_unary_rpc_method_handler(
            unary_behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        streaming: Streaming = handler.unary_stream  # type: ignore[assignment]

        async def stream_behavior(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            after = await before(method, context, True)
            try:
                async for response in streaming(request, context):
                    yield response
            finally:
                after()

        return grpc.unary_stream_rpc_method_handler(
            stream_behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    raise TypeError(f"{method}: only unary and server-streaming RPCs are served")


class OutcomeInterceptor(aio.ServerInterceptor):
    """Turns exceptions into statuses (DomainErrors by the error table, anything else
    into INTERNAL with the correlation id), and reports every call's outcome: one access
    log line and the metrics."""

    def __init__(
        self,
        observe: Callable[[str, str, grpc.StatusCode | None, float], None],
        trace_id: Callable[[], str],
    ) -> None:
        # observe(method, grpc_type, code or None when the call starts, seconds): metrics.
        self._observe = observe
        self._trace_id = trace_id

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        metadata = dict(handler_call_details.invocation_metadata or ())
        streaming = handler.request_streaming or handler.response_streaming
        grpc_type = _GRPC_TYPES[handler.request_streaming, handler.response_streaming]
        observe, trace_id = self._observe, self._trace_id

        def start() -> tuple[CallRecord, contextvars.Token[CallRecord], float]:
            requested_id = str(metadata.get("x-request-id", ""))
            correlation_id = (
                requested_id if _CORRELATION_ID.fullmatch(requested_id) else random_bytes(16).hex()
            )
            record = CallRecord(method, correlation_id, streaming, trace_id=trace_id())
            observe(method, grpc_type, None, 0.0)
            return record, _call.set(record), time.perf_counter()

        def finish(record: CallRecord, started: float, code: grpc.StatusCode) -> None:
            elapsed = time.perf_counter() - started
            observe(method, grpc_type, code, elapsed)
            level = logging.DEBUG if is_public(method) else logging.INFO
            if log.isEnabledFor(level):
                _log_access(level, method, code, elapsed, record)

        def observed(behavior: Unary) -> Unary:
            """A unary call, or a stream that writes with context.write() instead of
            yielding (grpc's health Watch): one coroutine either way."""

            async def coroutine_behavior(
                request: Any, context: aio.ServicerContext[Any, Any]
            ) -> Any:
                record, token, started = start()
                code = grpc.StatusCode.OK
                try:
                    return await behavior(request, context)
                except BaseException as error:
                    code = grpc.StatusCode.CANCELLED  # what _abort leaves when it re-raises
                    code = await _abort(error, context, record)
                finally:
                    finish(record, started, code)
                    _restore(_call, token)

            return coroutine_behavior

        def observed_stream(behavior: Streaming) -> Streaming:
            """A stream that yields its responses."""

            async def stream_behavior(
                request: Any, context: aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                record, token, started = start()
                code = grpc.StatusCode.OK
                try:
                    async for response in behavior(request, context):
                        yield response
                except BaseException as error:
                    code = grpc.StatusCode.CANCELLED  # what _abort leaves when it re-raises
                    code = await _abort(error, context, record)
                finally:
                    finish(record, started, code)
                    _restore(_call, token)

            return stream_behavior

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                observed(handler.unary_unary),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        # A request stream (server reflection's) passes through like a request.
        behavior: Any = handler.unary_stream or handler.stream_stream
        if behavior is None:
            return handler  # client streaming: no such method is served
        wrapped = (
            observed(behavior)
            if inspect.iscoroutinefunction(behavior)
            else observed_stream(behavior)
        )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _log_access(
    level: int, method: str, code: grpc.StatusCode, elapsed: float, record: CallRecord
) -> None:
    milliseconds = elapsed * 1000
    trace = f" trace_id={record.trace_id}" if record.trace_id else ""
    log_fields(
        log,
        level,
        f"method={method} code={code.name} duration_ms={milliseconds:.1f} "
        f"user_id={record.user_id or '-'} correlation_id={record.correlation_id}{trace}",
        {
            "method": method,
            "code": code.name,
            "duration_ms": round(milliseconds, 3),
            "user_id": record.user_id,
            "correlation_id": record.correlation_id,
            "trace_id": record.trace_id,
        },
    )


async def _abort(
    error: BaseException, context: aio.ServicerContext[Any, Any], record: CallRecord
) -> grpc.StatusCode:
    """Ends the call with the status for `error` (re-raising what grpc raised itself,
    such as an abort or a cancellation) and returns its code."""
    if isinstance(error, DomainError):
        status = status_for(error)
    elif isinstance(error, aio.AbortError):
        raise error
    elif isinstance(error, BaseException) and not isinstance(error, Exception):
        # Cancellation (the client went away or the server is stopping): no status to send.
        raise error
    else:
        error_log.error(
            "unhandled error in %s (correlation_id=%s)",
            record.method,
            record.correlation_id,
            exc_info=error,
        )
        status = internal_error_status(record.correlation_id)
    with contextlib.suppress(aio.AbortError):
        await context.abort(status.code, status.details, status.trailing_metadata)
    return status.code


class AdmissionInterceptor(aio.ServerInterceptor):
    """At most `max_unary` unary calls and `max_streams` streams at once per process;
    beyond either, RESOURCE_EXHAUSTED at once instead of a queue. While the server shuts
    down, every new call is refused with UNAVAILABLE (health checks excepted)."""

    def __init__(self, max_unary: int, max_streams: int) -> None:
        self._limits = {False: max_unary, True: max_streams}
        self._in_flight = {False: 0, True: 0}
        self.draining = False

    def in_flight(self, *, streaming: bool = False) -> int:
        return self._in_flight[streaming]

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if is_public(method):
            return handler
        return wrap_handler(handler, method, self._admit)

    async def _admit(
        self, _method: str, _context: aio.ServicerContext[Any, Any], streaming: bool
    ) -> Callable[[], None]:
        if self.draining:
            raise ShuttingDown()
        if self._in_flight[streaming] >= self._limits[streaming]:
            raise TooManyRequests("too many open streams; retry with backoff" if streaming else "")
        self._in_flight[streaming] += 1

        def release() -> None:
            self._in_flight[streaming] -= 1

        return release


class AuthInterceptor(aio.ServerInterceptor):
    """Requires a valid bearer token on every method but health and reflection."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if is_public(method):
            return handler
        metadata = handler_call_details.invocation_metadata or ()
        authorization = next((str(v) for k, v in metadata if k == "authorization"), None)
        verifier = self._verifier

        async def authenticate(
            _method: str, _context: aio.ServicerContext[Any, Any], _streaming: bool
        ) -> Callable[[], None]:
            token = _identity.set(verifier.verify(authorization))
            return lambda: _restore(_identity, token)

        return wrap_handler(handler, method, authenticate)
