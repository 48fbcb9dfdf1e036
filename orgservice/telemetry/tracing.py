"""OpenTelemetry traces, configured by the standard OTEL_* variables.

Unset, the service applies its own defaults: OTEL_TRACES_EXPORTER=none (no tracing, no
cost) and OTEL_SERVICE_NAME=orgservice. With `otlp` or `console` (comma-separated for
both), every RPC gets a span that continues a W3C `traceparent` from the call's metadata,
and every SQL statement a child span. Each process (each worker) sets up its own
exporter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from grpc import aio
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext, ExecutionContext

DEFAULTS = {"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "orgservice"}
EXPORTERS = ("otlp", "console", "none")


class Tracing:
    def __init__(self) -> None:
        for name, value in DEFAULTS.items():
            os.environ.setdefault(name, value)
        names = [
            name.strip()
            for name in os.environ["OTEL_TRACES_EXPORTER"].split(",")
            if name.strip() and name.strip() != "none"
        ]
        unknown = sorted(set(names) - set(EXPORTERS))
        if unknown:
            raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter(s) {', '.join(unknown)}")
        self.enabled = bool(names)
        self._provider: TracerProvider | None = None
        if self.enabled:
            # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
            self._provider = TracerProvider(resource=Resource.create())
            for name in names:
                self._provider.add_span_processor(_processor(name))

    def server_interceptors(self, untraced: Callable[[str], bool]) -> list[aio.ServerInterceptor]:
        """Spans for every method but those `untraced(method)` names: health probes poll
        all day. (The interceptor also breaks streams that write with context.write()
        instead of yielding, as grpc's health Watch does.)"""
        if self._provider is None:
            return []
        interceptor: aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self._provider,
            filter_=lambda details: not untraced(details.method),
        )
        return [interceptor]

    def instrument(self, engine: Engine) -> None:
        if self._provider is not None:
            _trace_statements(engine, self._provider.get_tracer(__name__))

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


# On the statement's execution context between the cursor events.
_SPAN_ATTRIBUTE = "_orgservice_span"


def _trace_statements(engine: Engine, tracer: trace.Tracer) -> None:
    """A span per SQL statement, a child of the current (RPC) span.

    Engine events rather than opentelemetry-instrumentation-sqlalchemy: that declines
    SQLAlchemy 2.1 (it logs an error and instruments nothing) and, told to skip its
    version check, imports sqlalchemy.ext.asyncio, which needs greenlet."""
    database = engine.dialect.name

    @event.listens_for(engine, "before_cursor_execute")
    def start(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if context is None:
            return
        span = tracer.start_span(
            statement.split(maxsplit=1)[0] if statement.strip() else database,
            kind=SpanKind.CLIENT,
            # Parameters are bound, never part of the text: no values leak into traces.
            attributes={"db.system": database, "db.statement": statement},
        )
        setattr(context, _SPAN_ATTRIBUTE, span)

    @event.listens_for(engine, "after_cursor_execute")
    def end(
        _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        _end_span(context)

    @event.listens_for(engine, "handle_error")
    def failed(exception_context: ExceptionContext) -> None:
        _end_span(exception_context.execution_context, exception_context.original_exception)


def _end_span(context: ExecutionContext | None, error: BaseException | None = None) -> None:
    span: trace.Span | None = getattr(context, _SPAN_ATTRIBUTE, None)
    if span is None:
        return
    delattr(context, _SPAN_ATTRIBUTE)
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


def _processor(name: str) -> SimpleSpanProcessor | BatchSpanProcessor:
    if name == "console":
        # Written as each span ends: the console is for looking at, right now.
        return SimpleSpanProcessor(ConsoleSpanExporter())
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    exporter: SpanExporter = OTLPSpanExporter()
    return BatchSpanProcessor(exporter)


def current_trace_id() -> str:
    """The trace id of the current span, as 32 hex digits; empty when not tracing."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
