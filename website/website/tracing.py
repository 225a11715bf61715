"""OpenTelemetry: spans for HTTP requests, database queries and token issuing.

Spans always get ids (they appear in the logs); they leave the process only when the
standard OTEL_EXPORTER_OTLP_ENDPOINT is set, so by default nothing is sent or printed.
"""

import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.ext.asyncio import AsyncEngine

tracer = trace.get_tracer("website")


def configure_tracing(app: FastAPI, engine: AsyncEngine) -> None:
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "website"}
    provider = TracerProvider(resource=Resource.create(attributes))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # Probes would drown the traces that matter.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz")
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine)
