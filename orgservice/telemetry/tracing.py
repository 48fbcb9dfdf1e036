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

from grpc import aio
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy import Engine

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
            tracer_provider=self._provider, filter_=lambda details: not untraced(details.method)
        )
        return [interceptor]

    def instrument(self, engine: Engine) -> None:
        """A span per SQL statement, a child of the RPC's span. (The instrumentation
        names SQLAlchemy 2.0 as its supported range; it works with 2.1, whose asyncio
        extension it imports needs greenlet, a dependency of ours for that reason.)"""
        if self._provider is not None:
            SQLAlchemyInstrumentor().instrument(
                engine=engine,
                tracer_provider=self._provider,
                enable_commenter=False,
                skip_dep_check=True,
            )

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


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
