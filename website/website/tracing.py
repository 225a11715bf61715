"""OpenTelemetry: spans for HTTP requests, database queries and token issuing.

Spans always get ids (they appear in the logs); they are recorded and leave the process only
when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, as in the chat,
so by default nothing is sent or printed.
The tracer provider is the process's (set up by __main__); an app only instruments itself.
"""

import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from sqlalchemy.ext.asyncio import AsyncEngine

tracer = trace.get_tracer("website")


def build_tracer_provider(*, recording: bool | None = None) -> TracerProvider:
    """A tracer provider from the environment. `recording` defaults to whether spans are
    exported (tests that collect spans themselves pass True)."""
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "website"}
    exporting = any(
        os.environ.get(name, "").strip()
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    # Exporting nothing, spans still get ids (the logs carry them) but record nothing: the
    # attributes no one would read were about 12 % of a chat token's CPU (ops/bench, A/B).
    # Recording, OTEL_TRACES_SAMPLER or the SDK's default decides.
    record = exporting if recording is None else recording
    provider = TracerProvider(
        resource=Resource.create(attributes), sampler=None if record else ALWAYS_OFF
    )
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def configure_tracer_provider(*, recording: bool | None = None) -> TracerProvider:
    """The process-wide provider (build_tracer_provider's); call once, before any app
    serves: OpenTelemetry refuses, with a warning, to replace it later."""
    provider = build_tracer_provider(recording=recording)
    trace.set_tracer_provider(provider)
    return provider


def instrument_app(app: FastAPI) -> None:
    # Probes would drown the traces that matter. One span per request: the ASGI "http send"
    # and "http receive" child spans (two or three more per request) told nothing and cost
    # about 5 % of a chat token's CPU.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz,readyz", exclude_spans=["receive", "send"]
    )


def instrument_engine(engine: AsyncEngine) -> bool:
    """Trace this engine's queries; False if another app of this process already does.

    The instrumentor is process-wide (one engine at a time): production runs one app, and
    tests that build a second app while the first runs get no query spans from it.
    """
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return False
    instrumentor.instrument(engine=engine.sync_engine)
    return True


def uninstrument_engine() -> None:
    """Undo instrument_engine, so the next app of this process can trace its own engine."""
    SQLAlchemyInstrumentor().uninstrument()
